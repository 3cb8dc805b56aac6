/**
 * `podman container inspect` as the lab's Podman 4.3 printed it (libs/engine/test/fixtures/podman, captured on
 * node-a): what is read from each, and the verdict whether it can move, with its reasons.
 */
import { readFileSync } from 'node:fs';
import { movable, parseContainerInspect, PodmanOutputError, type ContainerInspection } from './index.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/podman/${name}`, import.meta.url), 'utf8');
const inspect = (name: string): ContainerInspection => {
  const c = parseContainerInspect(fixture(name));
  if (!c) throw new Error(`${name}: no container`);
  return c;
};

const IMAGE = {
  name: 'localhost/spotlift-heartbeat:lab',
  id: 'e30cc397c71e070207d449a6c7d8d03da46bf51700cd579f0a74cba265e01458',
};

describe('parseContainerInspect: golden outputs of the lab', () => {
  it.each<[string, Partial<ContainerInspection>]>([
    [
      'inspect-running.json',
      {
        name: 'fx-running',
        state: 'running',
        running: true,
        paused: false,
        mainPid: 1285,
        conmonPid: 1275,
        checkpointed: false,
        image: IMAGE,
        runtime: 'runc',
        networkMode: 'host',
        volumes: [],
        binds: [],
        devices: [],
        ports: [],
        privileged: false,
        isInfra: false,
      },
    ],
    [
      'inspect-stopped.json',
      { name: 'fx-stopped', state: 'exited', running: false, mainPid: undefined, checkpointed: false, image: IMAGE },
    ],
    [
      // Podman keeps the last pid of a checkpointed container: it must not be taken for a live one.
      'inspect-checkpointed.json',
      {
        name: 'fx-running',
        state: 'exited',
        running: false,
        mainPid: undefined,
        conmonPid: undefined,
        checkpointed: true,
      },
    ],
    [
      'inspect-device.json',
      { name: 'fx-device', running: true, devices: [{ hostPath: '/dev/null', containerPath: '/dev/spotlift-null' }] },
    ],
    [
      'inspect-volume-port.json',
      {
        name: 'fx-volume-port',
        running: true,
        networkMode: 'bridge',
        ports: [{ containerPort: 8080, protocol: 'tcp', hostIp: '', hostPort: 18080 }],
        volumes: [
          {
            name: 'fxvol',
            driver: 'local',
            source: '/var/lib/containers/storage/volumes/fxvol/_data',
            destination: '/data',
            readOnly: false,
          },
        ],
        binds: [{ source: '/srv/data', destination: '/host-data', readOnly: true }],
        devices: [],
      },
    ],
  ])('%s', (file, expected) => {
    const c = inspect(file);
    // toMatchObject reads `key: undefined` as "present and undefined"; absent keys are checked below.
    expect(c).toMatchObject(Object.fromEntries(Object.entries(expected).filter(([, v]) => v !== undefined)));
    expect(c.id).toMatch(/^[0-9a-f]{64}$/);
    // explicit: toMatchObject does not fail on a property that should be absent
    if ('mainPid' in expected && expected.mainPid === undefined) expect(c.mainPid).toBeUndefined();
    if ('conmonPid' in expected && expected.conmonPid === undefined) expect(c.conmonPid).toBeUndefined();
    expect(c.rssKiB).toBeUndefined();
  });

  it('reads an unknown container ([] with exit 125) as no container, not as an error', () => {
    expect(parseContainerInspect('[]\n')).toBeUndefined();
  });

  it.each<[string, string, RegExp]>([
    ['not JSON', 'Error: something', /output is not JSON/],
    ['an object, not an array', '{}', /expected a JSON array/],
    ['two containers', JSON.stringify([{}, {}]), /expected one container, got 2/],
    ['an id that is not one', JSON.stringify([{ Id: 'abc', State: {}, HostConfig: {} }]), /Id is not a 64-hex/],
    ['no State', JSON.stringify([{ Id: 'a'.repeat(64), HostConfig: {} }]), /State is missing/],
    [
      'a port key that is not PORT/PROTO',
      JSON.stringify([{ Id: 'a'.repeat(64), State: {}, HostConfig: { PortBindings: { http: [] } } }]),
      /port binding key/,
    ],
    [
      'a host port out of range',
      JSON.stringify([
        { Id: 'a'.repeat(64), State: {}, HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '70000' }] } } },
      ]),
      /HostPort is not a port/,
    ],
  ])('rejects %s', (_what, text, message) => {
    expect(() => parseContainerInspect(text)).toThrow(PodmanOutputError);
    expect(() => parseContainerInspect(text)).toThrow(message);
  });
});

describe('movable: the verdict and its reasons', () => {
  it('a running runc container on the host network moves, needing nothing from the destination', () => {
    const v = movable(inspect('inspect-running.json'));
    expect(v).toEqual({ movable: true, refusals: [], volumesToCarry: [], bindsToProvide: [], portsToFree: [] });
  });

  it('a running container with a named volume, a bind and a published port moves, and says what the destination needs', () => {
    const v = movable(inspect('inspect-volume-port.json'));
    expect(v.movable).toBe(true);
    expect(v.volumesToCarry.map((m) => m.name)).toEqual(['fxvol']);
    expect(v.bindsToProvide.map((m) => m.source)).toEqual(['/srv/data']);
    expect(v.portsToFree.map((p) => p.hostPort)).toEqual([18080]);
  });

  it.each<[string, (c: ContainerInspection) => ContainerInspection, string[], RegExp]>([
    ['a stopped container', (c) => c, ['not_running'], /fx-stopped is exited: only a running container moves/],
    ['a device mapping', (c) => c, ['device'], /host device \/dev\/null mapped at \/dev\/spotlift-null/],
    ['a checkpointed container', (c) => c, ['not_running'], /is checkpointed/],
    [
      'a paused container',
      (c) => ({ ...c, paused: true, state: 'paused', rawState: 'paused' }),
      ['paused'],
      /is paused: unpause it first/,
    ],
    ['a privileged container', (c) => ({ ...c, privileged: true }), ['privileged'], /is privileged/],
    ['a container in a pod', (c) => ({ ...c, pod: 'p'.repeat(64) }), ['in_pod'], /belongs to pod/],
    [
      "a container sharing another one's network",
      (c) => ({ ...c, networkMode: 'container:abc' }),
      ['shares_namespaces'],
      /depends on other containers \(container:abc\)/,
    ],
    ['a crun container', (c) => ({ ...c, runtime: 'crun' }), ['runtime_cannot_checkpoint'], /runs under crun/],
  ])('refuses %s', (what, edit, codes, message) => {
    const file =
      what === 'a stopped container'
        ? 'inspect-stopped.json'
        : what === 'a device mapping'
          ? 'inspect-device.json'
          : what === 'a checkpointed container'
            ? 'inspect-checkpointed.json'
            : 'inspect-running.json';
    const v = movable(edit(inspect(file)));
    expect(v.movable).toBe(false);
    expect(v.refusals.map((r) => r.code)).toEqual(codes);
    expect(v.refusals.map((r) => r.message).join('\n')).toMatch(message);
  });

  it('accepts crun where the node says crun can checkpoint', () => {
    const c = { ...inspect('inspect-running.json'), runtime: 'crun' };
    expect(movable(c, { checkpointRuntimes: ['runc', 'crun'] }).movable).toBe(true);
  });

  it('lists every reason at once', () => {
    const c = { ...inspect('inspect-device.json'), running: false, rawState: 'exited', privileged: true };
    expect(movable(c).refusals.map((r) => r.code)).toEqual(['not_running', 'device', 'privileged']);
  });
});
