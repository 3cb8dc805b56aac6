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
