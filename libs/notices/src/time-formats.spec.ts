import { parseAwsEventDate, parseRfc1123, parseRfc3339 } from './time-formats.js';

describe('time formats', () => {
  it.each([
    ['2017-09-18T08:22:00Z', '2017-09-18T08:22:00.000Z'],
    ['2017-09-18t08:22:00z', '2017-09-18T08:22:00.000Z'],
    ['2017-09-18T08:22:00.5Z', '2017-09-18T08:22:00.500Z'],
    ['2017-09-18T10:22:00+02:00', '2017-09-18T08:22:00.000Z'],
    ['2017-09-18T03:22:00-05:00', '2017-09-18T08:22:00.000Z'],
  ])('parses RFC 3339 %s', (text, iso) => {
    expect(parseRfc3339(text)?.toISOString()).toBe(iso);
  });

  it.each([
    '2017-09-18',
    '2017-09-18 08:22:00Z',
    '2017-02-30T08:22:00Z',
    '2017-09-18T25:00:00Z',
    '18/09/2017 08:22',
    'Mon, 18 Sep 2017 08:22:00 GMT',
    '',
    '2017-09-18T08:22:00',
  ])('rejects %j as RFC 3339', (text) => {
    expect(parseRfc3339(text)).toBeUndefined();
  });

  it('parses RFC 1123 (Azure NotBefore)', () => {
    expect(parseRfc1123('Mon, 19 Sep 2016 18:29:47 GMT')?.toISOString()).toBe('2016-09-19T18:29:47.000Z');
    expect(parseRfc1123(new Date('2026-08-01T05:41:02Z').toUTCString())?.toISOString()).toBe(
      '2026-08-01T05:41:02.000Z',
    );
  });

  it.each([
    '19 Sep 2016 18:29:47 GMT',
    'Mon, 19 Sep 2016 18:29:47 UTC',
    'Mon, 31 Feb 2016 18:29:47 GMT',
    'Mon, 19 Foo 2016 18:29:47 GMT',
    '2016-09-19T18:29:47Z',
  ])('rejects %j as RFC 1123', (text) => {
    expect(parseRfc1123(text)).toBeUndefined();
  });

  it('parses the AWS scheduled-event layout, with or without a leading zero', () => {
    expect(parseAwsEventDate('21 Jan 2019 09:00:43 GMT')?.toISOString()).toBe('2019-01-21T09:00:43.000Z');
    expect(parseAwsEventDate('2 Jan 2006 15:04:05 GMT')?.toISOString()).toBe('2006-01-02T15:04:05.000Z');
    expect(parseAwsEventDate('Mon, 21 Jan 2019 09:00:43 GMT')).toBeUndefined();
    expect(parseAwsEventDate('2019-01-21T09:00:43Z')).toBeUndefined();
  });
});
