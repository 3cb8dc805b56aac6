import { CriuImageError } from '@spotlift/criu';
import { type TarMember, TarRefused } from '@spotlift/transport';

/**
 * What of Podman's `checkpoint --export` archive is unpacked on the storage node for inspection, and what the
 * container's own metadata files say. Pure: the bytes pass through the orchestrator's TarGuard, which calls
 * `judge` per member; the node then unpacks only the members picked here, by name.
 *
 * The archive was written by the workload's node (trusted with its own workload only) and is unpacked on the
 * storage node, which holds other workloads' checkpoints: so only plain regular files directly under
 * `checkpoint/` (CRIU's flat image directory) and the two metadata dumps are picked; a link, a device, a
 * nested directory or a setuid file under `checkpoint/` refuses the whole archive. The rest (rootfs-diff.tar,
 * volumes, network.status...) is never unpacked.
 */
export const ARCHIVE_LIMITS = {
  maxMembers: 4096,
  /** config.dump and spec.dump: real ones are a few KiB. */
  maxDumpBytes: 1 << 20,
  /** At most this many ports, volumes, mounts or arguments shown from the dumps. */
  maxListed: 256,
} as const;

export const METADATA_DUMPS = ['config.dump', 'spec.dump'] as const;

const IMAGE_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const REGULAR = new Set(['0', '\0', '7']);

export class CheckpointArchiveMembers {
  /** Archive names (as stored) to unpack, in archive order. */
  readonly picked: string[] = [];
  private readonly seen = new Set<string>();
  private members = 0;

  /** TarPolicy.judge: throws TarRefused for what must not reach the storage node's disk. */
  readonly judge = (m: TarMember): void => {
    if (++this.members > ARCHIVE_LIMITS.maxMembers)
      throw new TarRefused(`the archive has over ${ARCHIVE_LIMITS.maxMembers} members`);
    const key = m.parts.join('/');
    if (m.parts[0] === 'checkpoint') {
      if (m.parts.length === 1) {
        if (m.type !== '5') throw new TarRefused(`checkpoint in the archive is not a directory (type '${m.type}')`);
        return;
      }
      const what = `member ${JSON.stringify(m.name)}`;
      if (m.parts.length > 2) throw new TarRefused(`${what} is nested under checkpoint/ (CRIU's images are flat)`);
      if (!REGULAR.has(m.type)) throw new TarRefused(`${what} is not a regular file (type '${m.type}')`);
      if (!IMAGE_NAME.test(m.parts[1]!)) throw new TarRefused(`${what} is not a plain image name`);
      if (m.mode & 0o6000) throw new TarRefused(`${what} is a setuid/setgid file`);
      this.pick(key, m.name, what);
      return;
    }
    if (m.parts.length === 1 && (METADATA_DUMPS as readonly string[]).includes(key)) {
      const what = `member ${JSON.stringify(m.name)}`;
      if (!REGULAR.has(m.type)) throw new TarRefused(`${what} is not a regular file (type '${m.type}')`);
      if (m.size > ARCHIVE_LIMITS.maxDumpBytes)
        throw new TarRefused(`${what} is ${m.size} bytes, over ${ARCHIVE_LIMITS.maxDumpBytes}`);
      this.pick(key, m.name, what);
    }
    // Anything else stays in the archive: nothing unpacks it.
  };

  /** Once the whole archive passed: the picks, or why they cannot be inspected. */
  result(): string[] {
    if (!this.seen.has('checkpoint/inventory.img'))
      throw new CriuImageError('the archive has no checkpoint/inventory.img: it holds no CRIU images');
    if (!this.seen.has('config.dump')) throw new CriuImageError('the archive has no config.dump');
    return this.picked;
  }

  private pick(key: string, name: string, what: string): void {
    // Two members of one name: which one tar leaves on disk is not what was judged.
    if (this.seen.has(key)) throw new TarRefused(`${what} appears twice`);
    this.seen.add(key);
    this.picked.push(name);
  }
}

/** What `checkpointctl show` shows of a container checkpoint, from Podman's config.dump and spec.dump. */
export interface ContainerCheckpointMetadata {
  id?: string;
  name?: string;
  image: { name?: string; id?: string };
  runtime?: string;
  createdTime?: string;
  /** The engine that wrote it (spec annotation `io.container.manager`: libpod for Podman). */
  engine?: string;
  ports: { hostIp?: string; hostPort: number; containerPort: number; protocol: string; range: number }[];
  volumes: { name: string; dest: string }[];
  command: string[];
  hostname?: string;
  mounts: { destination: string; type?: string; source?: string }[];
  /** Fields that were not there or not readable. */
  problems: string[];
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v.slice(0, 4096) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v.slice(0, ARCHIVE_LIMITS.maxListed) : []);

function parse(text: string, file: string, problems: string[]): Json | undefined {
  try {
    const v = obj(JSON.parse(text));
    if (!v) problems.push(`${file} is not a JSON object`);
    return v;
  } catch (error) {
    problems.push(`${file} is not JSON: ${(error as Error).message.slice(0, 200)}`);
    return undefined;
  }
}

const defined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/**
 * config.dump is libpod's ContainerConfig (id, name, rootfsImageID/Name, runtime, createdTime, newPortMappings,
 * namedVolumes), spec.dump the container's OCI runtime spec (process.args, hostname, mounts, annotations).
 * Read leniently: a field of another shape is left out and named in `problems`, never thrown.
 */
export function containerMetadata(configText: string, specText?: string): ContainerCheckpointMetadata {
  const problems: string[] = [];
  const config = parse(configText, 'config.dump', problems) ?? {};
  const spec =
    specText === undefined ? (problems.push('no spec.dump'), {}) : (parse(specText, 'spec.dump', problems) ?? {});
  const ports = list(config.newPortMappings).flatMap((p) => {
    const o = obj(p);
    const hostPort = num(o?.host_port);
    const containerPort = num(o?.container_port);
    if (hostPort === undefined || containerPort === undefined) return [];
    const hostIp = str(o?.host_ip);
    return [
      {
        ...(hostIp ? { hostIp } : {}),
        hostPort,
        containerPort,
        protocol: str(o?.protocol) ?? 'tcp',
        range: num(o?.range) ?? 1,
      },
    ];
  });
  const volumes = list(config.namedVolumes).flatMap((v) => {
    const o = obj(v);
    const name = str(o?.volumeName);
    const dest = str(o?.dest);
    return name && dest ? [{ name, dest }] : [];
  });
  const process = obj(spec.process);
  const mounts = list(spec.mounts).flatMap((m) => {
    const o = obj(m);
    const destination = str(o?.destination);
    return destination ? [defined({ destination, type: str(o?.type), source: str(o?.source) })] : [];
  });
  if (str(config.id) === undefined) problems.push('config.dump has no id');
  return defined({
    id: str(config.id),
    name: str(config.name),
    image: defined({ name: str(config.rootfsImageName), id: str(config.rootfsImageID) }),
    runtime: str(config.runtime),
    createdTime: str(config.createdTime),
    engine: str(obj(spec.annotations)?.['io.container.manager']),
    ports,
    volumes,
    command: list(process?.args).flatMap((a) => (typeof a === 'string' ? [a.slice(0, 4096)] : [])),
    hostname: str(spec.hostname),
    mounts,
    problems,
  });
}
