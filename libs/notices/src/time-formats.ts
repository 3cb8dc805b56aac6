/**
 * Strict parsers for the three date formats the metadata services use. `Date.parse` is deliberately not
 * used: it accepts almost anything (and differs between engines), and a mis-read deadline is worse than a
 * reported problem.
 */

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const RFC1123 = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// AWS scheduled events: Go layout `2 Jan 2006 15:04:05 GMT` (day without leading zero).
const AWS_EVENT = /^(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/** Builds a UTC date and rejects impossible values (Feb 30, 25:00) that `Date.UTC` would roll over. */
function utc(y: number, mo: number, d: number, h: number, mi: number, s: number, ms = 0): Date | undefined {
  const date = new Date(Date.UTC(y, mo, d, h, mi, s, ms));
  const ok =
    date.getUTCFullYear() === y &&
    date.getUTCMonth() === mo &&
    date.getUTCDate() === d &&
    date.getUTCHours() === h &&
    date.getUTCMinutes() === mi &&
    date.getUTCSeconds() === s;
  return ok ? date : undefined;
}

/** RFC 3339 (`2017-09-18T08:22:00Z`, offsets and fractions allowed). Used by AWS `time`, `noticeTime`. */
export function parseRfc3339(text: string): Date | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m as unknown as string[];
  const ms = frac ? Math.floor(Number(`0${frac}`) * 1000) : 0;
  const base = utc(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (!base) return undefined;
  if (zone === 'Z' || zone === 'z') return base;
  const sign = zone!.startsWith('-') ? -1 : 1;
  const [oh, om] = zone!.slice(1).split(':').map(Number) as [number, number];
  if (oh > 23 || om > 59) return undefined;
  // A local time east of UTC is earlier in UTC: subtract the offset.
  return new Date(base.getTime() - sign * (oh * 60 + om) * 60_000);
}

/** RFC 1123 (`Mon, 19 Sep 2016 18:29:47 GMT`). Used by Azure `NotBefore`. */
export function parseRfc1123(text: string): Date | undefined {
  return fromDayMonthYear(RFC1123.exec(text));
}

/** AWS scheduled-event dates (`21 Jan 2019 09:00:43 GMT`). */
export function parseAwsEventDate(text: string): Date | undefined {
  return fromDayMonthYear(AWS_EVENT.exec(text));
}

function fromDayMonthYear(m: RegExpExecArray | null): Date | undefined {
  if (!m) return undefined;
  const [, d, mon, y, h, mi, s] = m as unknown as string[];
  const month = MONTHS.indexOf(mon!);
  if (month < 0) return undefined;
  return utc(Number(y), month, Number(d), Number(h), Number(mi), Number(s));
}
