/** What a copy between nodes returns, and how it fails (relayed or direct). */
export interface StreamResult {
  bytes: number;
  sha256: string;
  durationMs: number;
  /** What the sending command said on stderr (warnings, or a summary line it prints). */
  senderStderr?: string;
}

export class TransferError extends Error {}

/**
 * A copy whose channels are open and waiting for start(). cancel() closes them unless it started, so whoever
 * armed it may always cancel it on the way out.
 */
export interface ArmedStream {
  start(): Promise<StreamResult>;
  cancel(): Promise<void>;
}

/**
 * Turns a relayed stream into what the destination stores (an encryption the orchestrator does: the key never
 * reaches either node). `header` goes first; each chunk goes through `update` after any guard judged it, so the
 * guard sees the sender's bytes and the hashes (StreamResult.sha256) are over what was stored.
 */
export interface StreamSeal {
  header: Buffer;
  update(chunk: Buffer): Buffer;
}
