/**
 * spotlift placement: destination choice, memory reservations, strategy choice, evacuation planning and
 * rebalancing. Pure functions over plain data; no Nest, no I/O.
 */
export * from './types.js';
export * from './format.js';
export * from './capacity-ledger.js';
export * from './choose-destination.js';
export * from './choose-strategy.js';
export * from './transfer-sim.js';
export * from './evacuation-types.js';
export * from './evacuation-bound.js';
export { linksOf, streamCap, streamCapOf, valueOf } from './evacuation-model.js';
export type { PinnedJob, ScheduleContext } from './evacuation-admission.js';
export { schedulePass, type ScheduleResult } from './evacuation-scheduler.js';
export { orderQueue, planEvacuation } from './plan-evacuation.js';
export { withGuardPath } from './guard-path.js';
export { SHORTLIST, shortlistDestinations } from './destination-shortlist.js';
export { replan, type ReplanOptions } from './replan.js';
export * from './rebalance-types.js';
export * from './rebalance-budgets.js';
export * from './rebalance-evacuability.js';
export * from './plan-rebalance.js';
export * from './rebalance-reserve.js';
