import type { EvacuationRecord } from '@spotlift/domain';

/** Events kept per evacuation: enough to read what happened, bounded so a flapping source cannot grow it. */
const MAX_EVENTS = 200;

/** Appends a notable step to the record (the caller saves it). */
export function addEvent(rec: EvacuationRecord, at: Date, msg: string): void {
  rec.events.push({ at: at.toISOString(), msg });
  if (rec.events.length > MAX_EVENTS) rec.events.splice(0, rec.events.length - MAX_EVENTS);
}

/** Appends events another copy of the record gathered (a writer saving onto the record as stored now). */
export function appendEvents(rec: EvacuationRecord, events: ReadonlyArray<{ at: string; msg: string }>): void {
  rec.events.push(...events);
  if (rec.events.length > MAX_EVENTS) rec.events.splice(0, rec.events.length - MAX_EVENTS);
}
