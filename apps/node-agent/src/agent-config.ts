import { z } from 'zod';

const DEFAULT_METADATA_URL = {
  aws: 'http://169.254.169.254',
  gcp: 'http://metadata.google.internal',
  azure: 'http://169.254.169.254',
} as const;

const Env = z.object({
  SPOTLIFT_URL: z.url(),
  SPOTLIFT_API_TOKEN: z.string().min(16),
  SPOTLIFT_NODE_ID: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
  SPOTLIFT_AGENT_CLOUD: z.enum(['aws', 'gcp', 'azure']),
  SPOTLIFT_METADATA_URL: z.url().optional(),
  SPOTLIFT_AZURE_VM_NAME: z.string().min(1).optional(),
});

export interface AgentConfig {
  orchestratorUrl: string;
  token: string;
  nodeId: string;
  cloud: 'aws' | 'gcp' | 'azure';
  metadataUrl: string;
  azureVmName?: string;
}

/** Reads the agent's environment; every problem is listed at once. */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
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
  return {
    orchestratorUrl: e.SPOTLIFT_URL,
    token: e.SPOTLIFT_API_TOKEN,
    nodeId: e.SPOTLIFT_NODE_ID,
    cloud: e.SPOTLIFT_AGENT_CLOUD,
    metadataUrl: e.SPOTLIFT_METADATA_URL ?? DEFAULT_METADATA_URL[e.SPOTLIFT_AGENT_CLOUD],
    ...(e.SPOTLIFT_AZURE_VM_NAME ? { azureVmName: e.SPOTLIFT_AZURE_VM_NAME } : {}),
  };
}
