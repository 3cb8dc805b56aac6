import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** The API listener's own settings (TLS, /docs), kept out of app-config.ts so that file stays small. */
export const ApiEnv = z.object({
  /** PEM certificate chain and key of the API (paths; both or neither): the API then listens on HTTPS only. */
  SPOTLIFT_TLS_CERT: z.string().min(1).optional(),
  SPOTLIFT_TLS_KEY: z.string().min(1).optional(),
  /** `false` serves no /docs at all; otherwise /docs and /docs/openapi.json need a viewer token. */
  SPOTLIFT_API_DOCS: z.enum(['true', 'false']).default('true'),
});
export type ApiEnv = z.infer<typeof ApiEnv>;

export interface ApiSettings {
  tls?: { cert: Buffer; key: Buffer };
  docs: boolean;
}

/** Reads the API settings (the TLS files once, here); throws with the reason a person can act on. */
export function apiSettings(e: ApiEnv): ApiSettings {
  if (Boolean(e.SPOTLIFT_TLS_CERT) !== Boolean(e.SPOTLIFT_TLS_KEY)) {
    throw new Error('SPOTLIFT_TLS_CERT and SPOTLIFT_TLS_KEY go together: set both (HTTPS) or neither (HTTP)');
  }
  const read = (name: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`Cannot read ${name} ${path}: ${(error as Error).message}`);
    }
  };
  return {
    ...(e.SPOTLIFT_TLS_CERT && e.SPOTLIFT_TLS_KEY
      ? {
          tls: {
            cert: read('SPOTLIFT_TLS_CERT', e.SPOTLIFT_TLS_CERT),
            key: read('SPOTLIFT_TLS_KEY', e.SPOTLIFT_TLS_KEY),
          },
        }
      : {}),
    docs: e.SPOTLIFT_API_DOCS === 'true',
  };
}
