import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
// The default import: Node's ESM loader finds no named export `utils` in ssh2 (CommonJS), so
// `import { utils }` passed the tests (ts-jest) and failed `node dist/.../main.js` at start.
import ssh2 from 'ssh2';
import {
  DEFAULT_ENGINE_CONFIG,
  DEFAULT_FILE_SYNC_CONFIG,
  DEFAULT_LIVE_CONFIG,
  type EngineConfig,
  type LiveConfig,
  parseMasterKey,
} from '@spotlift/engine';
import {
  EvacuationSettings,
  NodeMetadataSpec,
  NoticeEnv,
  noticeSettings,
  type NoticeSettings,
} from './evacuation-config.js';
import { ApiEnv, apiSettings, type ApiSettings } from './api-config.js';
import { SweeperEnv, sweeperSettings, type SweeperSettings } from '../sweeper/sweeper-config.js';
import { EventsEnv, eventsSettings, type EventsSettings } from '../events/events-config.js';
import { RedisEnv, redisSettings, type RedisSettings } from './redis-config.js';
import { RebalanceSettings } from '../rebalance/rebalance-config.js';

/** One node as the config file (and POST /nodes) describes it. */
export const NodeSpec = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, at most 63'),
    name: z.string().min(1).max(120).optional(),
    host: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().min(1).max(64).default('root'),
    hostKey: z
      .string()
      .regex(/^(SHA256:[A-Za-z0-9+/]{43}|[a-z0-9-]+(@[a-z.]+)? [A-Za-z0-9+/]+=*)$/, "'TYPE BASE64' or 'SHA256:...'"),
    dataAddress: z.string().min(1).max(253).optional(),
    zone: z.string().max(120).optional(),
    spotPool: z.string().max(120).optional(),
    lifecycle: z.enum(['spot', 'on-demand']).default('spot'),
    labels: z.record(z.string(), z.string()).default({}),
    /** The node's cloud metadata service, watched for notices over its SSH session. */
    metadata: NodeMetadataSpec.optional(),
    /**
     * Storage this node shares with the other nodes of `group` (NFS, a shared volume): a workload's declared
     * paths under one of `paths` are not copied between two such nodes.
     */
    sharedStorage: z
      .object({
        group: z.string().min(1).max(120),
        paths: z
          .array(z.string().regex(/^\/[A-Za-z0-9._@%+=:,~/-]*$/, 'an absolute path of plain characters'))
          .min(1)
          .max(64),
      })
      .strict()
      .optional(),
    /** Where this node keeps checkpoints when it is a storage node (default SPOTLIFT_CHECKPOINT_ROOT). */
    checkpointRoot: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]*$/, 'an absolute path of plain characters')
      .optional(),
  })
  // A typo (`dataAdress`) must be an error, not a silently ignored field.
  .strict();
export type NodeSpec = z.infer<typeof NodeSpec>;

const LIVE = DEFAULT_LIVE_CONFIG;
/**
 * The config file's `live` section: the engine's pre-copy, post-copy and `auto` settings (libs/engine
 * strategies/live-config.ts says what each does). A job may lower or raise `maxRounds` for itself.
 */
export const LiveSettings = z
  .object({
    maxRounds: z.number().int().min(1).max(100).default(LIVE.maxRounds),
    minShrink: z.number().gt(0).max(1).default(LIVE.minShrink),
    fixedFreezeMs: z.number().int().min(0).max(600_000).default(LIVE.fixedFreezeMs),
    defaultDowntimeBudgetMs: z.number().int().min(1).max(3_600_000).default(LIVE.defaultDowntimeBudgetMs),
    assumedBandwidthBytesPerSec: z.number().positive().default(LIVE.assumedBandwidthBytesPerSec),
    dirtySampleMs: z.number().int().min(10).max(60_000).default(LIVE.dirtySampleMs),
    trialTtlOkMs: z.number().int().min(1000).default(LIVE.trialTtlOkMs),
    trialTtlFailedMs: z.number().int().min(1000).default(LIVE.trialTtlFailedMs),
    trialTimeoutMs: z.number().int().min(1000).max(3_600_000).default(LIVE.trialTimeoutMs),
    lazyRestore: z.boolean().default(LIVE.lazyRestore),
  })
  .strict();

/**
 * The config file's `files` section: how workloads' declared paths are copied (libs/engine files/) and the
 * largest deleted-but-open file a dump carries (CRIU's --ghost-limit).
 */
export const FileSettings = z
  .object({
    maxRounds: z.number().int().min(1).max(20).default(DEFAULT_FILE_SYNC_CONFIG.maxRounds),
    targetRoundMs: z.number().int().min(1).max(600_000).default(DEFAULT_FILE_SYNC_CONFIG.targetRoundMs),
    ghostLimitBytes: z
      .number()
      .int()
      .min(0)
      .max(2 ** 40)
      .default(DEFAULT_ENGINE_CONFIG.ghostLimitBytes ?? 0),
  })
  .strict();
export type FileSettings = z.infer<typeof FileSettings>;

export const ConfigFile = z.object({
  ssh: z.object({ privateKeyPath: z.string().min(1) }),
  nodes: z.array(NodeSpec).default([]),
  evacuation: EvacuationSettings.default(EvacuationSettings.parse({})),
  live: LiveSettings.default(LiveSettings.parse({})),
  files: FileSettings.default(FileSettings.parse({})),
  rebalance: RebalanceSettings.default(RebalanceSettings.parse({})),
});

const Env = z.object({
  SPOTLIFT_CONFIG: z.string().min(1).describe('path of the JSON config file (ssh key, nodes)'),
  SPOTLIFT_API_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  SPOTLIFT_REDIS_PREFIX: z
    .string()
    .regex(/^[a-z0-9_-]+$/)
    .default('spotlift'),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  SPOTLIFT_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  // Migrations mostly wait on their nodes (pages go node to node): an evacuation's moves must not queue behind
  // a handful of slots when a reclaim takes many nodes at once (the fleet bench: 4 slots held 50 notices' first
  // commands for seconds). Checkpoints relay every image file through the worker: fewer at once.
  SPOTLIFT_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(32),
  SPOTLIFT_CHECKPOINT_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  SPOTLIFT_IMAGE_ROOT: z.string().startsWith('/').default('/var/lib/spotlift/images'),
  SPOTLIFT_CHECKPOINT_ROOT: z.string().startsWith('/').default('/var/lib/spotlift/checkpoints'),
  /** A file holding the master key of checkpoint encryption at rest (64 hex digits or base64 of 32 bytes). */
  SPOTLIFT_CHECKPOINT_KEY_FILE: z.string().startsWith('/').optional(),
  /** The same key inline (prefer the file: the environment is readable where the process is). */
  SPOTLIFT_CHECKPOINT_KEY: z.string().min(1).optional(),
  // The worker's local journal: migration and workload records it could not hand to Redis, and its last copies.
  SPOTLIFT_STATE_DIR: z.string().startsWith('/').default('/var/lib/spotlift/state'),
  SPOTLIFT_LOG_FORMAT: z.enum(['json', 'text']).default('json'),
  // The page-traffic TLS CA (key stays here, generated on first use) and where nodes keep their certificates.
  SPOTLIFT_TLS_CA_DIR: z.string().startsWith('/').default('/var/lib/spotlift/ca'),
  SPOTLIFT_TLS_NODE_DIR: z.string().startsWith('/').default('/var/lib/spotlift/tls'),
  // Preflight trusts a destination probe's `criu check` this long instead of running it again (0 = never).
  SPOTLIFT_PROBE_REUSE_MS: z.coerce.number().int().min(0).max(3_600_000).default(60_000),
  // The ssh page transport: node to node where a pair allows it (`auto`), else relayed; or always relayed.
  SPOTLIFT_SSH_TUNNEL: z.enum(['auto', 'relay']).default('auto'),
  // Nodes' authorized_keys (relative: under the login's $HOME), where the one-time tunnel key is put.
  SPOTLIFT_SSH_TUNNEL_AUTHORIZED_KEYS: z
    .string()
    .regex(/^[A-Za-z0-9._/-]+$/, 'a path of plain characters')
    .default('.ssh/authorized_keys'),
  // Commands open at once on one node's SSH connection (the rest queue); nodes need sshd MaxSessions above it.
  SPOTLIFT_SSH_MAX_CHANNELS: z.coerce.number().int().min(1).max(1000).default(8),
  // SSH handshakes in flight at once over all nodes (the rest wait their turn): a fleet's boot is not a storm.
  SPOTLIFT_SSH_MAX_CONNECTS: z.coerce.number().int().min(1).max(10_000).default(32),
  ...NoticeEnv.shape,
  ...ApiEnv.shape,
  ...SweeperEnv.shape,
  /** Guard mode's pass, ms (apps/orchestrator/src/guard); 0: off. */
  SPOTLIFT_GUARD_TICK_MS: z.coerce.number().int().min(0).max(3_600_000).default(5_000),
  SPOTLIFT_NODE_LOSS_AFTER_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(60_000),
  ...EventsEnv.shape,
  ...RedisEnv.shape,
});

/** The validated configuration; injected by type, read nowhere else from process.env. */
export class AppConfig {
  configPath!: string;
  apiToken!: string;
  redisUrl!: string;
  /** Every Redis client's connection (URL, sentinels), the start-up durability check, record retention. */
  redis!: RedisSettings;
  redisPrefix!: string;
  host!: string;
  port!: number;
  role!: 'all' | 'api' | 'worker';
  workerConcurrency!: number;
  /** Checkpoint and restore jobs a worker runs at once. */
  checkpointConcurrency!: number;
  imageRoot!: string;
  /** Checkpoint images on storage nodes that set no `checkpointRoot` of their own. */
  checkpointRoot!: string;
  /** Checkpoint encryption at rest: the master key, from SPOTLIFT_CHECKPOINT_KEY(_FILE); absent: off. */
  checkpointKey?: Buffer;
  /** This process's local journal (`<stateDir>/<redis prefix>/{migration,workload}/<id>.json`). */
  stateDir!: string;
  logFormat!: 'json' | 'text';
  tlsCaDir!: string;
  tlsNodeDir!: string;
  probeReuseMs!: number;
  sshTunnel!: { mode: 'auto' | 'relay'; authorizedKeysFile: string };
  /** Session channels open at once per node connection (SPOTLIFT_SSH_MAX_CHANNELS). */
  sshMaxChannels!: number;
  /** SSH handshakes in flight at once, over all nodes (SPOTLIFT_SSH_MAX_CONNECTS). */
  sshMaxConnects!: number;
  sshPrivateKey!: Buffer;
  nodes!: NodeSpec[];
  evacuation!: EvacuationSettings;
  /** The engine's live-strategy settings (config file `live`). */
  live!: LiveConfig;
  /** Declared-file copying and ghost files (config file `files`). */
  files!: FileSettings;
  notices!: NoticeSettings;
  /** HTTPS (SPOTLIFT_TLS_CERT/KEY) and /docs (SPOTLIFT_API_DOCS). */
  api!: ApiSettings;
  /** The sweeper of dead jobs' leftovers on the nodes (SPOTLIFT_SWEEP_*). */
  sweeper!: SweeperSettings;
  /** The event stream behind GET /events (SPOTLIFT_EVENTS_*). */
  events!: EventsSettings;
  /** Capacity rebalancing (config file `rebalance`). */
  rebalance!: RebalanceSettings;
  /** Guard mode's pass on worker replicas, ms (SPOTLIFT_GUARD_TICK_MS); 0: off. */
  guardTickMs!: number;
  /** A node hosting guarded workloads silent this long (and confirmed gone) is lost (SPOTLIFT_NODE_LOSS_AFTER_MS). */
  nodeLossAfterMs!: number;

  /** What the engine and the checkpoint flow run with: one place, so both get every setting. */
  get engine(): EngineConfig {
    return {
      ...DEFAULT_ENGINE_CONFIG,
      imageRoot: this.imageRoot,
      probeReuseMs: this.probeReuseMs,
      ghostLimitBytes: this.files.ghostLimitBytes,
      fileSync: { maxRounds: this.files.maxRounds, targetRoundMs: this.files.targetRoundMs },
      ...(this.checkpointKey ? { checkpointKey: this.checkpointKey } : {}),
    };
  }

  get runsWorker(): boolean {
    return this.role === 'all' || this.role === 'worker';
  }

  get runsApi(): boolean {
    return this.role === 'all' || this.role === 'api';
  }
}

export class ConfigError extends Error {}

function explain(prefix: string, error: z.ZodError): string {
  return `${prefix}:\n` + error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
}

/**
 * Reads the orchestrator's SSH key and parses it once, at boot: a key ssh2 cannot use would otherwise show up
 * later as every node being "unreachable", which points the operator at the wrong thing.
 */
export function readSshPrivateKey(path: string): Buffer {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (error) {
    throw new ConfigError(`Cannot read SSH private key: ${(error as Error).message}`);
  }
  const parsed = ssh2.utils.parseKey(key);
  if (parsed instanceof Error) throw new ConfigError(`SSH private key ${path} cannot be used: ${parsed.message}`);
  if (!parsed.isPrivateKey()) throw new ConfigError(`SSH private key ${path} cannot be used: it is a public key`);
  return key;
}

/**
 * The checkpoint master key, read once at boot: from a file only its owner can read (as ssh wants of a private
 * key), or inline; both set is ambiguous and refused.
 */
export function readCheckpointKey(file: string | undefined, inline: string | undefined): Buffer | undefined {
  if (file && inline) throw new ConfigError('set SPOTLIFT_CHECKPOINT_KEY_FILE or SPOTLIFT_CHECKPOINT_KEY, not both');
  let text = inline;
  if (file) {
    try {
      if (statSync(file).mode & 0o077) {
        throw new Error('it is readable or writable by others than its owner (chmod 600 it)');
      }
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`Cannot use checkpoint key file ${file}: ${(error as Error).message}`);
    }
  }
  if (text === undefined) return undefined;
  try {
    return parseMasterKey(text);
  } catch (error) {
    throw new ConfigError(`Checkpoint key: ${(error as Error).message}`);
  }
}

/** Reads and validates the environment and the config file once, at boot; lists every problem at once. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) throw new ConfigError(explain('Invalid environment', parsed.error));
  const e = parsed.data;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(e.SPOTLIFT_CONFIG, 'utf8'));
  } catch (error) {
    throw new ConfigError(`Cannot read config file ${e.SPOTLIFT_CONFIG}: ${(error as Error).message}`);
  }
  const file = ConfigFile.safeParse(raw);
  if (!file.success) throw new ConfigError(explain(`Invalid config file ${e.SPOTLIFT_CONFIG}`, file.error));
  const sshPrivateKey = readSshPrivateKey(file.data.ssh.privateKeyPath);
  const checkpointKey = readCheckpointKey(e.SPOTLIFT_CHECKPOINT_KEY_FILE, e.SPOTLIFT_CHECKPOINT_KEY);
  let api: ApiSettings;
  let notices: NoticeSettings;
  let redis: RedisSettings;
  try {
    redis = redisSettings(e);
    api = apiSettings(e);
    notices = noticeSettings(e);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  return Object.assign(new AppConfig(), {
    configPath: e.SPOTLIFT_CONFIG,
    apiToken: e.SPOTLIFT_API_TOKEN,
    redisUrl: e.REDIS_URL,
    redis,
    redisPrefix: e.SPOTLIFT_REDIS_PREFIX,
    host: e.HOST,
    port: e.PORT,
    role: e.SPOTLIFT_ROLE,
    workerConcurrency: e.SPOTLIFT_WORKER_CONCURRENCY,
    checkpointConcurrency: e.SPOTLIFT_CHECKPOINT_CONCURRENCY,
    imageRoot: e.SPOTLIFT_IMAGE_ROOT,
    checkpointRoot: e.SPOTLIFT_CHECKPOINT_ROOT,
    ...(checkpointKey ? { checkpointKey } : {}),
    stateDir: e.SPOTLIFT_STATE_DIR,
    logFormat: e.SPOTLIFT_LOG_FORMAT,
    tlsCaDir: e.SPOTLIFT_TLS_CA_DIR,
    tlsNodeDir: e.SPOTLIFT_TLS_NODE_DIR,
    probeReuseMs: e.SPOTLIFT_PROBE_REUSE_MS,
    sshTunnel: { mode: e.SPOTLIFT_SSH_TUNNEL, authorizedKeysFile: e.SPOTLIFT_SSH_TUNNEL_AUTHORIZED_KEYS },
    sshMaxChannels: e.SPOTLIFT_SSH_MAX_CHANNELS,
    sshMaxConnects: e.SPOTLIFT_SSH_MAX_CONNECTS,
    sshPrivateKey,
    nodes: file.data.nodes,
    evacuation: file.data.evacuation,
    live: file.data.live satisfies LiveConfig,
    files: file.data.files,
    notices,
    api,
    sweeper: sweeperSettings(e),
    events: eventsSettings(e),
    rebalance: file.data.rebalance,
    guardTickMs: e.SPOTLIFT_GUARD_TICK_MS,
    nodeLossAfterMs: e.SPOTLIFT_NODE_LOSS_AFTER_MS,
  });
}
