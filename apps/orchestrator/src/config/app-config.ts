import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  EvacuationSettings,
  NodeMetadataSpec,
  NoticeEnv,
  noticeSettings,
  type NoticeSettings,
} from './evacuation-config.js';

/** One node as the config file (and POST /nodes) describes it. */
export const NodeSpec = z.object({
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
});
export type NodeSpec = z.infer<typeof NodeSpec>;

export const ConfigFile = z.object({
  ssh: z.object({ privateKeyPath: z.string().min(1) }),
  nodes: z.array(NodeSpec).default([]),
  evacuation: EvacuationSettings.default(EvacuationSettings.parse({})),
});

const Env = z.object({
  SPOTLIFT_CONFIG: z.string().min(1).describe('path of the JSON config file (ssh key, nodes)'),
  SPOTLIFT_API_TOKEN: z.string().min(16, 'must be at least 16 characters'),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  SPOTLIFT_REDIS_PREFIX: z
    .string()
    .regex(/^[a-z0-9_-]+$/)
    .default('spotlift'),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  SPOTLIFT_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  SPOTLIFT_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  SPOTLIFT_IMAGE_ROOT: z.string().startsWith('/').default('/var/lib/spotlift/images'),
  SPOTLIFT_LOG_FORMAT: z.enum(['json', 'text']).default('json'),
  // The page-traffic TLS CA (key stays here, generated on first use) and where nodes keep their certificates.
  SPOTLIFT_TLS_CA_DIR: z.string().startsWith('/').default('/var/lib/spotlift/ca'),
  SPOTLIFT_TLS_NODE_DIR: z.string().startsWith('/').default('/var/lib/spotlift/tls'),
  ...NoticeEnv.shape,
});

/** The validated configuration; injected by type, read nowhere else from process.env. */
export class AppConfig {
  configPath!: string;
  apiToken!: string;
  redisUrl!: string;
  redisPrefix!: string;
  host!: string;
  port!: number;
  role!: 'all' | 'api' | 'worker';
  workerConcurrency!: number;
  imageRoot!: string;
  logFormat!: 'json' | 'text';
  tlsCaDir!: string;
  tlsNodeDir!: string;
  sshPrivateKey!: Buffer;
  nodes!: NodeSpec[];
  evacuation!: EvacuationSettings;
  notices!: NoticeSettings;

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
  let sshPrivateKey: Buffer;
  try {
    sshPrivateKey = readFileSync(file.data.ssh.privateKeyPath);
  } catch (error) {
    throw new ConfigError(`Cannot read SSH private key: ${(error as Error).message}`);
  }
  return Object.assign(new AppConfig(), {
    configPath: e.SPOTLIFT_CONFIG,
    apiToken: e.SPOTLIFT_API_TOKEN,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.SPOTLIFT_REDIS_PREFIX,
    host: e.HOST,
    port: e.PORT,
    role: e.SPOTLIFT_ROLE,
    workerConcurrency: e.SPOTLIFT_WORKER_CONCURRENCY,
    imageRoot: e.SPOTLIFT_IMAGE_ROOT,
    logFormat: e.SPOTLIFT_LOG_FORMAT,
    tlsCaDir: e.SPOTLIFT_TLS_CA_DIR,
    tlsNodeDir: e.SPOTLIFT_TLS_NODE_DIR,
    sshPrivateKey,
    nodes: file.data.nodes,
    evacuation: file.data.evacuation,
    notices: noticeSettings(e),
  });
}
