/**
 * What `podman container inspect` says about a container, reduced to what a migration decides on, and the
 * verdict whether it can move. Pure: parsing and rules only (golden outputs of the lab's Podman 4.3 in
 * libs/engine/test/fixtures/podman).
 */
import { PodmanOutputError } from './errors.js';

/** A mount the container's file system view depends on, as the destination must provide it. */
export interface ContainerMount {
  /** Container path. */
  destination: string;
  /** Host path (for a volume: its directory in the node's container storage). */
  source: string;
  readOnly: boolean;
}

export interface VolumeMount extends ContainerMount {
  /** The named volume (Podman's own, in its storage). */
  name: string;
  driver: string;
}

export interface DeviceMapping {
  hostPath: string;
  containerPath: string;
}

export interface PublishedPort {
  containerPort: number;
  protocol: string;
  /** '' = every address. */
  hostIp: string;
  hostPort: number;
}

/** Podman's container states (libpod's ContainerStatus strings). */
export type ContainerState =
  | 'created'
  | 'configured'
  | 'initialized'
  | 'running'
  | 'paused'
  | 'stopping'
  | 'stopped'
  | 'exited'
  | 'removing'
  | 'unknown';

export interface ContainerInspection {
  id: string;
  name: string;
  state: ContainerState;
  /** What Podman printed, should `state` be 'unknown'. */
  rawState: string;
  running: boolean;
  paused: boolean;
  /** The container's main process (host pid) while it runs; undefined otherwise (Podman keeps a stale one). */
  mainPid?: number;
  conmonPid?: number;
  /** Checkpointed and not restored since (Podman's State.Checkpointed). */
  checkpointed: boolean;
  /**
   * Not in `podman inspect`: the main pid's tree is measured the way a process workload's is (its RSS from
   * /proc), so this stays undefined here and the caller fills it in.
   */
  rssKiB?: number;
  image: { name: string; id: string };
  /** The OCI runtime that runs it ('runc', 'crun', ...). */
  runtime: string;
  /** A non-empty pod id: the container shares namespaces with the pod's others. */
  pod?: string;
  isInfra: boolean;
  privileged: boolean;
  volumes: VolumeMount[];
  binds: ContainerMount[];
  tmpfs: ContainerMount[];
  /** Mounts of another type (image, overlay, devpts, ...), by type. */
  otherMounts: Array<ContainerMount & { type: string }>;
  devices: DeviceMapping[];
  /** 'host', 'bridge', 'none', 'private', 'slirp4netns', 'container:<id>', 'ns:<path>', a network's name. */
  networkMode: string;
  ports: PublishedPort[];
  /** Containers this one depends on (shared namespaces, --requires). */
  dependencies: string[];
}

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function bad(message: string, meta: Record<string, unknown> = {}): never {
  throw new PodmanOutputError(`podman container inspect: ${message}`, meta);
}

const STATES: readonly ContainerState[] = [
  'created',
  'configured',
  'initialized',
  'running',
  'paused',
  'stopping',
  'stopped',
  'exited',
  'removing',
];

/**
 * Parses the stdout of `podman container inspect ONE` (a JSON array of exactly one object). An empty array is
 * what Podman prints (with exit 125 and "no such container" on stderr) for an unknown container: that is an
 * answer, not a parse error, so it returns undefined.
 */
export function parseContainerInspect(stdout: string): ContainerInspection | undefined {
  let v: unknown;
  try {
    v = JSON.parse(stdout);
  } catch (err) {
    bad(`output is not JSON (${err instanceof Error ? err.message : String(err)}): ${stdout.slice(0, 120)}`);
  }
  if (!Array.isArray(v)) bad('expected a JSON array of containers');
  if (v.length === 0) return undefined;
  if (v.length > 1) bad(`expected one container, got ${v.length}: inspect one reference at a time`);
  return toInspection(v[0]);
}

function toInspection(c: unknown): ContainerInspection {
  if (!isObj(c)) bad('the entry is not an object');
  const id = str(c.Id);
  if (!/^[0-9a-f]{64}$/.test(id)) bad(`Id is not a 64-hex container id: ${JSON.stringify(c.Id)}`);
  const state = isObj(c.State) ? c.State : bad('State is missing', { id });
  const host = isObj(c.HostConfig) ? c.HostConfig : bad('HostConfig is missing', { id });
  const rawState = str(state.Status);
  const running = state.Running === true;
  const pid = typeof state.Pid === 'number' && state.Pid > 0 ? state.Pid : undefined;
  const conmon = typeof state.ConmonPid === 'number' && state.ConmonPid > 0 ? state.ConmonPid : undefined;

  const out: ContainerInspection = {
    id,
    name: str(c.Name),
    state: (STATES as readonly string[]).includes(rawState) ? (rawState as ContainerState) : 'unknown',
    rawState,
    running,
    paused: state.Paused === true,
    checkpointed: state.Checkpointed === true,
    image: { name: str(c.ImageName), id: str(c.Image) },
    runtime: str(c.OCIRuntime),
    isInfra: c.IsInfra === true,
    privileged: host.Privileged === true,
    volumes: [],
    binds: [],
    tmpfs: [],
    otherMounts: [],
    devices: [],
    networkMode: str(host.NetworkMode),
    ports: parsePorts(host.PortBindings, id),
    dependencies: Array.isArray(c.Dependencies) ? c.Dependencies.map(str).filter(Boolean) : [],
  };
  // Podman keeps the last pid after the container stopped (or was checkpointed): only a running one's counts.
  if (running && pid !== undefined) out.mainPid = pid;
  if (running && conmon !== undefined) out.conmonPid = conmon;
  if (str(c.Pod)) out.pod = str(c.Pod);

  for (const m of Array.isArray(c.Mounts) ? c.Mounts : []) {
    if (!isObj(m)) bad('a Mounts entry is not an object', { id });
    const base: ContainerMount = { destination: str(m.Destination), source: str(m.Source), readOnly: m.RW === false };
    const type = str(m.Type);
    if (type === 'volume') out.volumes.push({ ...base, name: str(m.Name), driver: str(m.Driver) });
    else if (type === 'bind') out.binds.push(base);
    else if (type === 'tmpfs') out.tmpfs.push(base);
    else out.otherMounts.push({ ...base, type });
  }
  for (const d of Array.isArray(host.Devices) ? host.Devices : []) {
    if (!isObj(d)) bad('a HostConfig.Devices entry is not an object', { id });
    out.devices.push({ hostPath: str(d.PathOnHost), containerPath: str(d.PathInContainer) });
  }
  return out;
}

/** HostConfig.PortBindings: {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]}, or {} / null. */
function parsePorts(bindings: unknown, id: string): PublishedPort[] {
  if (bindings === null || bindings === undefined) return [];
  if (!isObj(bindings)) bad('HostConfig.PortBindings is not an object', { id });
  const out: PublishedPort[] = [];
  for (const [key, list] of Object.entries(bindings)) {
    const m = /^(\d{1,5})\/([a-z]+)$/.exec(key);
    if (!m) bad(`a port binding key is not PORT/PROTO: ${JSON.stringify(key)}`, { id });
    for (const b of Array.isArray(list) ? list : []) {
      if (!isObj(b)) bad('a port binding is not an object', { id });
      const hostPort = Number(str(b.HostPort));
      if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) {
        bad(`a port binding's HostPort is not a port: ${JSON.stringify(b.HostPort)}`, { id });
      }
      out.push({ containerPort: Number(m[1]), protocol: m[2]!, hostIp: str(b.HostIp), hostPort });
    }
  }
  return out.sort((a, b) => a.containerPort - b.containerPort || a.protocol.localeCompare(b.protocol));
}

/** Why a container cannot move; each one a person can act on. */
export interface MoveRefusal {
  code:
    'not_running' | 'paused' | 'device' | 'privileged' | 'in_pod' | 'shares_namespaces' | 'runtime_cannot_checkpoint';
  message: string;
}

export interface MovableVerdict {
  movable: boolean;
  refusals: MoveRefusal[];
  /** Named volumes: their data moves (copied like declared paths) unless they are on shared storage. */
  volumesToCarry: VolumeMount[];
  /** Bind mounts: the same host path must exist on the destination (a declared path, or shared storage). */
  bindsToProvide: ContainerMount[];
  /** Published host ports: must be free on the destination, or the restore fails (and rolls back). */
  portsToFree: PublishedPort[];
}

export interface MovableOptions {
  /** OCI runtimes on the source that can checkpoint (default: runc only; Debian 12's crun cannot here). */
  checkpointRuntimes?: readonly string[];
}

/** Whether INSPECTION can move by checkpoint/restore, and what the destination must provide if so. */
export function movable(c: ContainerInspection, opts: MovableOptions = {}): MovableVerdict {
  const refusals: MoveRefusal[] = [];
  const runtimes = opts.checkpointRuntimes ?? ['runc'];
  if (c.paused) {
    refusals.push({
      code: 'paused',
      message: `container ${c.name} is paused: unpause it first (Podman checkpoints running containers only)`,
    });
  } else if (!c.running) {
    const why = c.checkpointed ? 'checkpointed (it already moved or was saved)' : c.rawState || 'not running';
    refusals.push({ code: 'not_running', message: `container ${c.name} is ${why}: only a running container moves` });
  }
  for (const d of c.devices) {
    refusals.push({
      code: 'device',
      message: `container ${c.name} has host device ${d.hostPath} mapped at ${d.containerPath}: CRIU cannot carry a device's state to another node`,
    });
  }
  if (c.privileged) {
    refusals.push({
      code: 'privileged',
      message: `container ${c.name} is privileged: it sees every host device, which cannot move`,
    });
  }
  if (c.pod) {
    refusals.push({
      code: 'in_pod',
      message: `container ${c.name} belongs to pod ${c.pod}: it shares namespaces with the pod's other containers, and pods do not move yet`,
    });
  }
  if (c.isInfra) {
    refusals.push({ code: 'in_pod', message: `container ${c.name} is a pod's infra container: pods do not move yet` });
  }
  const shared = /^(container|ns):/.test(c.networkMode) ? [c.networkMode] : [];
  if (shared.length > 0 || c.dependencies.length > 0) {
    refusals.push({
      code: 'shares_namespaces',
      message: `container ${c.name} depends on other containers (${[...shared, ...c.dependencies].join(', ')}): they would have to move together`,
    });
  }
  if (!runtimes.includes(c.runtime)) {
    refusals.push({
      code: 'runtime_cannot_checkpoint',
      message: `container ${c.name} runs under ${c.runtime || 'an unknown runtime'}, which cannot checkpoint on this node (checkpointing runtimes: ${runtimes.join(', ')})`,
    });
  }
  return {
    movable: refusals.length === 0,
    refusals,
    volumesToCarry: c.volumes,
    bindsToProvide: c.binds,
    portsToFree: c.ports,
  };
}
