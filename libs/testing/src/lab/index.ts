/**
 * Helpers for jest suites that run against the real lab (scripts/lab): CRIU, one network namespace and
 * sshd per node, private Redis instances, and heartbeat workloads that prove a migration kept the process.
 */
export * from './paths.js';
export * from './exec.js';
export * from './lab.js';
export * from './redis.js';
export * from './workload.js';
export * from './bare-migrate.js';
export * from './heartbeat-collector.js';
export * from './orchestrator-process.js';
