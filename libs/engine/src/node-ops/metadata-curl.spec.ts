import { CURL_COMMAND, curlConfig, parseCurlOutput } from './metadata-curl.js';

describe('curlConfig', () => {
  it('puts everything on stdin, quoted for curl, never on the command line', () => {
    const cfg = curlConfig(
      'http://169.254.169.254/latest/api/token',
      { method: 'PUT', path: '/latest/api/token', headers: { 'X-aws-ec2-metadata-token': 'se"cr\\et' } },
      2_000,
    );
    expect(cfg).toContain('url = "http://169.254.169.254/latest/api/token"\n');
    expect(cfg).toContain('request = "PUT"\n');
    expect(cfg).toContain('max-time = 2.000\n');
    expect(cfg).toContain('header = "X-aws-ec2-metadata-token: se\\"cr\\\\et"\n');
    expect(CURL_COMMAND).not.toMatch(/se"cr/);
  });

  it('sends a body with data-raw, so a leading @ names no file on the node', () => {
    const cfg = curlConfig('http://x/y', { method: 'POST', path: '/y', body: '@/etc/shadow\n' }, 1_000);
    expect(cfg).toContain('data-raw = "@/etc/shadow\\n"\n');
    expect(cfg).not.toContain('data-binary');
  });

  it('refuses header injection', () => {
    expect(() =>
      curlConfig('http://x/', { method: 'GET', path: '/', headers: { A: 'b\r\nHost: evil' } }, 1_000),
    ).toThrow(RangeError);
  });
});

describe('parseCurlOutput', () => {
  it('splits status, lower-cased headers and body', () => {
    const out = 'HTTP/1.1 200 OK\r\nETag: "abc"\r\nMetadata-Flavor: Google\r\n\r\nTRUE';
    expect(parseCurlOutput(out)).toEqual({
      status: 200,
      headers: { etag: '"abc"', 'metadata-flavor': 'Google' },
      body: 'TRUE',
    });
  });

  it('skips interim 1xx answers and keeps a body that contains blank lines', () => {
    const out =
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\n<h1>\r\n\r\nx</h1>';
    expect(parseCurlOutput(out)).toEqual({
      status: 404,
      headers: { 'content-type': 'text/html' },
      body: '<h1>\r\n\r\nx</h1>',
    });
  });

  it('returns undefined for output that is not an HTTP answer', () => {
    expect(parseCurlOutput('')).toBeUndefined();
    expect(parseCurlOutput('curl: (7) Failed to connect')).toBeUndefined();
    expect(parseCurlOutput('HTTP/1.1 200 OK\r\nX: y')).toBeUndefined();
  });
});
