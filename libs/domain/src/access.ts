/**
 * Who may call the API. Roles nest (viewer < operator < admin); an `agent` is outside that order: it holds
 * one node id and may only push notices for that node (a compromised node must not speak for others).
 */
export const ROLES = ['viewer', 'operator', 'admin', 'agent'] as const;
export type Role = (typeof ROLES)[number];

/** A token as it is stored (the secret only as its sha256) and listed (without `secretSha256`). */
export interface ApiTokenRecord {
  id: string;
  name: string;
  role: Role;
  /** The one node an `agent` token speaks for; absent for every other role. */
  nodeId?: string;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
  /** Which token created it (id), for the audit trail. */
  createdBy?: string;
  /** Hex sha256 of the secret part; never leaves the store. */
  secretSha256: string;
}

/** One line of the audit log: who did what to which ids, when, with what outcome. Never a secret, never a body. */
export interface AuditEntry {
  at: string;
  /** The caller's token, when it presented a valid one (absent for failed authentications). */
  tokenId?: string;
  tokenName?: string;
  role?: Role;
  method: string;
  /** The route pattern (`/migrations/:id/cancel`), else the path. */
  route: string;
  /** Ids the call named: route parameters and id fields of the body (`workload`, `nodeId`, ...). */
  targets: Record<string, string>;
  status: number;
  /** Why a call was refused (401/403), in words. */
  denied?: string;
  remote?: string;
}
