import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';

const DEFAULT_METADATA_URL = {
  aws: 'http://169.254.169.254',
  gcp: 'http://metadata.google.internal',
  azure: 'http://169.254.169.254',
} as const;

const Env = z.object({
  SPOTLIFT_URL: z.url(),
  /** An `agent` token for this node (`spotlift tokens create --role agent --node <id>`), never an admin's. */
  SPOTLIFT_AGENT_TOKEN: z.string().min(16),
  /** PEM CA the orchestrator's HTTPS certificate chains to, when it is not in the system's trust store. */
  SPOTLIFT_CA: z.string().min(1).optional(),
  SPOTLIFT_AGENT_ALLOW_INSECURE_HTTP: z.enum(['true', 'false']).default('false'),
  SPOTLIFT_NODE_ID: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
  SPOTLIFT_AGENT_CLOUD: z.enum(['aws', 'gcp', 'azure']),
  SPOTLIFT_METADATA_URL: z.url().optional(),
  SPOTLIFT_AZURE_VM_NAME: z.string().min(1).optional(),
});

export interface AgentConfig {
  orchestratorUrl: string;
  token: string;
  ca?: Buffer;
  nodeId: string;
  cloud: 'aws' | 'gcp' | 'azure';
  metadataUrl: string;
  azureVmName?: string;
}

/** Loopback: the token cannot be read on the wire there, so plain HTTP is fine (a local TLS proxy, a test). */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * Reads the agent's environment (and `--allow-insecure-http` from argv); every problem is listed at once.
 * The agent's token is refused on plain HTTP to another host: anyone on the path could read it and push
 * notices for this node; `--allow-insecure-http` (or SPOTLIFT_AGENT_ALLOW_INSECURE_HTTP=true) says so knowingly.
 */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env, argv: string[] = []): AgentConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    throw new Error(
      'Invalid environment:\n' + parsed.error.issues.map((i) => `  - ${i.path.join('.')}: ${i.message}`).join('\n'),
    );
  }
  const e = parsed.data;
  if (e.SPOTLIFT_AGENT_CLOUD === 'azure' && !e.SPOTLIFT_AZURE_VM_NAME) {
    throw new Error(
      'Invalid environment:\n  - SPOTLIFT_AZURE_VM_NAME: required for azure (the name in scheduled events Resources)',
    );
  }
  const url = new URL(e.SPOTLIFT_URL);
  const insecureOk = argv.includes('--allow-insecure-http') || e.SPOTLIFT_AGENT_ALLOW_INSECURE_HTTP === 'true';
  if (url.protocol === 'http:' && !isLoopback(url.hostname) && !insecureOk) {
    throw new Error(
      `Invalid environment:\n  - SPOTLIFT_URL: plain http:// to ${url.hostname} would send the agent token in clear; ` +
        'use https:// (SPOTLIFT_CA for a private CA) or pass --allow-insecure-http',
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error('Invalid environment:\n  - SPOTLIFT_URL: http:// or https:// only');
  }
  let ca: Buffer | undefined;
  if (e.SPOTLIFT_CA) {
    try {
      ca = readFileSync(e.SPOTLIFT_CA);
    } catch (error) {
      throw new Error(`Invalid environment:\n  - SPOTLIFT_CA: ${(error as Error).message}`);
    }
  }
  return {
    orchestratorUrl: e.SPOTLIFT_URL,
    token: e.SPOTLIFT_AGENT_TOKEN,
    ...(ca ? { ca } : {}),
    nodeId: e.SPOTLIFT_NODE_ID,
    cloud: e.SPOTLIFT_AGENT_CLOUD,
    metadataUrl: e.SPOTLIFT_METADATA_URL ?? DEFAULT_METADATA_URL[e.SPOTLIFT_AGENT_CLOUD],
    ...(e.SPOTLIFT_AZURE_VM_NAME ? { azureVmName: e.SPOTLIFT_AZURE_VM_NAME } : {}),
  };
}
