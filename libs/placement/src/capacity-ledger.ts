/**
 * Memory reservations on destinations, as immutable plain data so a caller can keep the ledger in Redis
 * (or recompute it from in-flight migrations) and concurrent jobs cannot overbook a node: a migration
 * reserves its memory before it starts and releases it on rollback, or commits it once restored.
 */
import { fmtBytes } from './format.js';

/** Memory promised to one migration on one destination. Keyed by migration id so re-runs are idempotent. */
export interface Reservation {
  id: string;
  nodeId: string;
  bytes: number;
}

/** Probed free memory per node plus the reservations taken against it. */
export interface CapacityLedger {
  readonly capacity: Readonly<Record<string, number>>;
  readonly reservations: Readonly<Record<string, Reservation>>;
}

/** Outcome of {@link reserve}: a new ledger, or the unchanged one and why not. */
export type ReserveResult =
  { ok: true; ledger: CapacityLedger } | { ok: false; ledger: CapacityLedger; reason: string; freeBytes: number };

/** A ledger from probed free memory (bytes per node id), with nothing reserved yet. */
export function createLedger(freeBytesByNode: Readonly<Record<string, number>>): CapacityLedger {
  return { capacity: { ...freeBytesByNode }, reservations: {} };
}

/** Bytes reserved on a node by in-flight migrations. */
export function reservedBytes(ledger: CapacityLedger, nodeId: string): number {
  let sum = 0;
  for (const r of Object.values(ledger.reservations)) if (r.nodeId === nodeId) sum += r.bytes;
  return sum;
}

/** Bytes still promisable on a node; 0 for a node the ledger does not know (unknown is not free). */
export function freeBytes(ledger: CapacityLedger, nodeId: string): number {
  const cap = ledger.capacity[nodeId];
  if (cap === undefined) return 0;
  return cap - reservedBytes(ledger, nodeId);
}

/**
 * Reserve memory for one migration. Reserving the same id again with the same node and size is a no-op
 * (engine steps are re-runnable); a different node or size under an existing id is refused.
 */
export function reserve(ledger: CapacityLedger, reservation: Reservation): ReserveResult {
  const { id, nodeId, bytes } = reservation;
  if (!Number.isFinite(bytes) || bytes < 0) {
    return { ok: false, ledger, reason: `invalid reservation size ${bytes}`, freeBytes: freeBytes(ledger, nodeId) };
  }
  const existing = ledger.reservations[id];
  if (existing) {
    if (existing.nodeId === nodeId && existing.bytes === bytes) return { ok: true, ledger };
    return {
      ok: false,
      ledger,
      reason: `reservation '${id}' already holds ${fmtBytes(existing.bytes)} on '${existing.nodeId}'`,
      freeBytes: freeBytes(ledger, nodeId),
    };
  }
  const free = freeBytes(ledger, nodeId);
  if (ledger.capacity[nodeId] === undefined) {
    return { ok: false, ledger, reason: `node '${nodeId}' is not in the ledger`, freeBytes: 0 };
  }
  if (bytes > free) {
    return {
      ok: false,
      ledger,
      reason: `node '${nodeId}' has ${fmtBytes(free)} unreserved, ${fmtBytes(bytes)} requested`,
      freeBytes: free,
    };
  }
  return { ok: true, ledger: { ...ledger, reservations: { ...ledger.reservations, [id]: { id, nodeId, bytes } } } };
}

/** Drop a reservation (rollback, cancel). Unknown ids are ignored so release can be retried. */
export function release(ledger: CapacityLedger, reservationId: string): CapacityLedger {
  if (!(reservationId in ledger.reservations)) return ledger;
  const { [reservationId]: _gone, ...rest } = ledger.reservations;
  return { ...ledger, reservations: rest };
}

/**
 * The migration completed: its memory is now in use on the node. Turn the reservation into a capacity
 * decrease, so the node stays correctly accounted until the next probe replaces the figure.
 */
export function commit(ledger: CapacityLedger, reservationId: string): CapacityLedger {
  const r = ledger.reservations[reservationId];
  if (!r) return ledger;
  const released = release(ledger, reservationId);
  const cap = released.capacity[r.nodeId] ?? 0;
  return { ...released, capacity: { ...released.capacity, [r.nodeId]: cap - r.bytes } };
}

/**
 * A fresh probe of a node's free memory. The probe cannot see migrations still in flight, so their
 * reservations stay; committed ones are already inside the probed figure.
 */
export function setCapacity(ledger: CapacityLedger, nodeId: string, freeBytesNow: number): CapacityLedger {
  return { ...ledger, capacity: { ...ledger.capacity, [nodeId]: freeBytesNow } };
}
