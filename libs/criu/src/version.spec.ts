import { readFileSync } from 'node:fs';
import { CriuArgError, CriuOutputError } from './errors.js';
import { compareCriuVersions, isCriuVersionAtLeast, parseCriuVersion } from './version.js';

const fixtures = new URL('../test/fixtures/', import.meta.url);

describe('parseCriuVersion', () => {
  it('reads the real `criu --version` output of this lab', () => {
    expect(parseCriuVersion(readFileSync(new URL('outputs/version.txt', fixtures), 'utf8'))).toEqual({
      version: '4.2.1',
      major: 4,
      minor: 2,
      sublevel: 1,
    });
  });

  it('reads a GitID line when the build has one', () => {
    expect(parseCriuVersion('Version: 3.19\nGitID: v3.19-47-g9b6b1dc\n')).toEqual({
      version: '3.19',
      major: 3,
      minor: 19,
      sublevel: 0,
      gitId: 'v3.19-47-g9b6b1dc',
    });
  });

  it('keeps a suffix', () => {
    expect(parseCriuVersion('Version: 4.3-rc1')).toMatchObject({ major: 4, minor: 3, sublevel: 0, extra: '-rc1' });
  });

  it.each([
    ['', /\(empty\)/],
    ['criu: command not found', /no 'Version: X.Y\[.Z\]' line/],
    ['Version: four', /no 'Version/],
    ['Version:', /no 'Version/],
  ])('rejects %j', (output, message) => {
    expect(() => parseCriuVersion(output)).toThrow(CriuOutputError);
    expect(() => parseCriuVersion(output)).toThrow(message);
  });
});

describe('compareCriuVersions', () => {
  const cases: [string, string, -1 | 0 | 1][] = [
    ['4.2.1', '4.2', 1],
    ['4.2', '4.2.0', 0],
    ['4.2.1', '4.2.1', 0],
    ['3.17.1', '4.2', -1],
    ['4.10', '4.9', 1],
    ['4.2', '4.10', -1],
    ['10.0', '9.99.99', 1],
    ['4.3-rc1', '4.3', -1],
    ['4.3', '4.3-rc1', 1],
    ['4.3-rc1', '4.3-rc2', -1],
  ];
  it.each(cases)('%s vs %s = %i', (a, b, expected) => {
    expect(compareCriuVersions(a, b)).toBe(expected);
    expect(compareCriuVersions(b, a)).toBe(expected === 0 ? 0 : -expected);
  });

  it('accepts parsed versions', () => {
    expect(compareCriuVersions(parseCriuVersion('Version: 4.2.1'), '4.2.1')).toBe(0);
  });

  it('rejects what is not a version', () => {
    expect(() => compareCriuVersions('4', '4.2')).toThrow(CriuArgError);
    expect(() => compareCriuVersions('4.2', 'latest')).toThrow(/b is not a CRIU version/);
  });
});

describe('isCriuVersionAtLeast', () => {
  it.each([
    ['4.2.1', '4.2', true],
    ['4.2', '4.2', true],
    ['4.1.1', '4.2', false],
    ['3.17.1', '4.2', false],
    ['5.0', '4.2', true],
  ])('%s >= %s is %s', (v, min, expected) => {
    expect(isCriuVersionAtLeast(v, min)).toBe(expected);
  });
});
