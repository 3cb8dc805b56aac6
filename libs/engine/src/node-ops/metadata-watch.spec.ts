import { METADATA_WATCH_COMMAND, MetadataWatchParser, metadataWatchInput } from './metadata-watch.js';

const B = '0123456789abcdef0123';
const record = (i: number, body: string, status: number, exit = 0) =>
  `${B} ${i}\n${body}\n${status}\n${exit}\n${B} end\n`;

describe('metadataWatchInput', () => {
  it('sends the requests on stdin, each config ended by the boundary; secrets stay off the command line', () => {
    const input = metadataWatchInput(B, 250, 4, ['url = "http://x/a"\nheader = "T: s3cret"\n', 'url = "http://x/b"\n']);
    expect(input).toBe(`${B}\n250\n4\n2\nurl = "http://x/a"\nheader = "T: s3cret"\n${B}\nurl = "http://x/b"\n${B}\n`);
    expect(METADATA_WATCH_COMMAND).not.toContain('s3cret');
  });

  it('refuses a boundary that could appear in a body or break the framing', () => {
    expect(() => metadataWatchInput('end', 250, 4, [])).toThrow(RangeError);
    expect(() => metadataWatchInput(`${B}\n`, 250, 4, [])).toThrow(RangeError);
  });
});

describe('MetadataWatchParser', () => {
  it('reads answers and ticks, across chunks cut anywhere', () => {
    const out = record(0, '{"action":"terminate"}', 200) + `${B} tick\n` + record(1, 'line one\nline two', 404);
    for (let cut = 0; cut < out.length; cut += 7) {
      const p = new MetadataWatchParser(B, 1 << 16);
      const events = [...p.push(out.slice(0, cut)), ...p.push(out.slice(cut))];
      expect(events).toEqual([
        { kind: 'answer', index: 0, status: 200, body: '{"action":"terminate"}', curlExit: 0 },
        { kind: 'tick' },
        { kind: 'answer', index: 1, status: 404, body: 'line one\nline two', curlExit: 0 },
      ]);
    }
  });

  it('keeps an empty body and a failed curl apart', () => {
    const p = new MetadataWatchParser(B, 1 << 16);
    expect(p.push(record(0, '', 404) + record(1, '', 0, 28))).toEqual([
      { kind: 'answer', index: 0, status: 404, body: '', curlExit: 0 },
      { kind: 'answer', index: 1, status: 0, body: '', curlExit: 28 },
    ]);
  });

  it('a body holding the word "end" or a fake boundary of another run does not end the record', () => {
    const p = new MetadataWatchParser(B, 1 << 16);
    const body = `end\nffffffffffffffffffff end\n${B}x`;
    expect(p.push(record(0, body, 200))).toEqual([{ kind: 'answer', index: 0, status: 200, body, curlExit: 0 }]);
  });

  it('refuses a node printing without end (bounded memory) and a malformed record', () => {
    const p = new MetadataWatchParser(B, 1_000);
    expect(() => p.push(`${B} 0\n` + 'x'.repeat(2_000))).toThrow(/more than 1000 bytes/);
    expect(() => new MetadataWatchParser(B, 1_000).push(`${B} zero\nbody\n${B} end\n`)).toThrow(/malformed/);
  });
});
