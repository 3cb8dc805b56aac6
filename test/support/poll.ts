// The e2e suites' import path for the shared poll (libs/testing, where the int-specs take it from too).
export { until } from '@spotlift/testing';
