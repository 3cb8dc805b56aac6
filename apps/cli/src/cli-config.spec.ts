/**
 * The CLI's settings: where the config file is, which source wins, and that the token is never in a file
 * others may read. Real files in a temp directory.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliConfigError, configPath, readConfigFile, resolveSettings, writeConfigFile } from './cli-config.js';

const dir = () => mkdtempSync(join(tmpdir(), 'spotlift-cli-'));

describe('configPath', () => {
  it('is ~/.config/spotlift/config.json unless XDG_CONFIG_HOME or SPOTLIFT_CLI_CONFIG say otherwise', () => {
    expect(configPath({}, '/home/ann')).toBe('/home/ann/.config/spotlift/config.json');
    expect(configPath({ XDG_CONFIG_HOME: '/x' }, '/home/ann')).toBe('/x/spotlift/config.json');
    expect(configPath({ SPOTLIFT_CLI_CONFIG: '/etc/s.json', XDG_CONFIG_HOME: '/x' }, '/h')).toBe('/etc/s.json');
  });
});

describe('writeConfigFile / readConfigFile', () => {
  it('writes the file 0600 in a 0700 directory, also over an older file that others could read', () => {
    const path = join(dir(), 'spotlift', 'config.json');
    writeConfigFile(path, { url: 'http://a:1', token: 't0' });
    chmodSync(path, 0o644);
    writeConfigFile(path, { url: 'https://b:2', token: 'spl_secret', ca: '/ca.pem' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o700);
    expect(readConfigFile(path)).toEqual({ url: 'https://b:2', token: 'spl_secret', ca: '/ca.pem' });
  });

  it('reads a missing file as empty, warns about a readable one holding a token, refuses garbage', () => {
    const d = dir();
    expect(readConfigFile(join(d, 'none.json'))).toEqual({});
    const path = join(d, 'c.json');
    writeFileSync(path, JSON.stringify({ url: 'http://x', token: 'tok' }), { mode: 0o644 });
    const warnings: string[] = [];
    expect(readConfigFile(path, (w) => warnings.push(w))).toEqual({ url: 'http://x', token: 'tok' });
    expect(warnings).toEqual([expect.stringContaining(`chmod 600 ${path}`)]);
    writeFileSync(path, '{not json');
    expect(() => readConfigFile(path)).toThrow(CliConfigError);
    writeFileSync(path, JSON.stringify({ token: 42 }));
    expect(() => readConfigFile(path)).toThrow(/'token' must be a non-empty string/);
    expect(readFileSync(path, 'utf8')).toContain('42'); // a bad file is reported, never rewritten
  });
});

describe('resolveSettings', () => {
  const file = { url: 'http://file:1', token: 'from-file', ca: '/file-ca.pem' };
  it('flags over the environment over the file over the default', () => {
    expect(resolveSettings({}, {}, {})).toEqual({ url: 'http://127.0.0.1:8080' });
    expect(resolveSettings({}, {}, file)).toEqual(file);
    expect(resolveSettings({}, { SPOTLIFT_URL: 'http://env:2', SPOTLIFT_API_TOKEN: 'from-env' }, file)).toEqual({
      url: 'http://env:2',
      token: 'from-env',
      ca: '/file-ca.pem',
    });
    expect(
      resolveSettings({ url: 'http://flag:3', token: 'from-flag' }, { SPOTLIFT_URL: 'http://env:2' }, file),
    ).toMatchObject({ url: 'http://flag:3', token: 'from-flag' });
  });
});
