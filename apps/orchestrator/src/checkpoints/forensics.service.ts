import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  BadRequestError,
  ConflictError,
  NotFoundError,
  type CheckpointRecord,
  type NodeRecord,
} from '@spotlift/domain';
import {
  MAX_PATTERN_BYTES,
  patternBytes,
  type ExportLayout,
  type ImageInspection,
  type SearchResult,
} from '@spotlift/criu';
import {
  CONTAINER_ARCHIVE,
  Clock,
  NodeOps,
  StoredImages,
  type ArchiveStream,
  openContainerImages,
  type ContainerCheckpointMetadata,
  type ContainerImages,
} from '@spotlift/engine';
import { CheckpointRepository, NodeRepository } from '@spotlift/store';
import type { SearchHit } from '@spotlift/criu';
import { AppConfig } from '../config/app-config.js';

export const SearchCheckpoint = z
  .object({
    /** Up to 256 bytes once encoded (a hex pattern: two digits per byte). */
    pattern: z
      .string()
      .min(1)
      .max(MAX_PATTERN_BYTES * 2),
    encoding: z.enum(['utf8', 'hex']).default('utf8'),
    maxHits: z.number().int().min(1).max(1000).default(100),
    /** Bytes shown before and after each hit. */
    context: z.number().int().min(0).max(256).default(32),
    /** The scan ends after this long and says so (`truncated: 'time'`). */
    timeoutMs: z.number().int().min(100).max(120_000).default(30_000),
  })
  .strict();
export type SearchCheckpoint = z.infer<typeof SearchCheckpoint>;

/** A streamed search (POST /checkpoints/:id/search with `Accept: application/x-ndjson`). */
export interface SearchStream {
  /** The checkpoint is found and its images readable: the answer may start (errors before it are plain 4xx/5xx). */
  onOpen: () => void;
  onHit: (hit: SearchHit) => Promise<void>;
  /** True once the client went away: the scan stops before its next read. */
  cancelled: () => boolean;
}

export interface CheckpointInspection {
  checkpoint: string;
  mode: 'storage' | 'forensic' | 'guard';
  workloadId: string;
  storageNodeId: string;
  imageDir: string;
  /** Not in the images (CRIU writes neither): the writing node's CRIU and kernel as its probe recorded them. */
  writer: { nodeId: string; criuVersion?: string; kernel?: string };
  /** Every file of the stored checkpoint with its size. */
  imageFiles: Record<string, number>;
  inspection: ImageInspection;
  /** A container's checkpoint: what Podman's config.dump and spec.dump say (as `checkpointctl show` does). */
  container?: ContainerCheckpointMetadata & {
    /** The CRIU images are members of checkpoint.tar, unpacked on the storage node (`imageFiles` lists them). */
    archive: string;
    unpackedNow: boolean;
  };
  durationMs: number;
}

/**
 * Inspection and memory search of stored checkpoints (admin only, every call audited: the images hold the
 * workload's memory). Reads from the storage node over SSH (StoredImages), decodes in the orchestrator.
 */
@Injectable()
export class ForensicsService {
  constructor(
    private readonly checkpoints: CheckpointRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    private readonly clock: Clock,
    /** Its `checkpointKey` decrypts encrypted checkpoints here, in the orchestrator. */
    private readonly config?: AppConfig,
  ) {}

  async inspect(id: string): Promise<CheckpointInspection> {
    const started = this.clock.now().getTime();
    const { cp, images, container } = await this.open(id);
    const { inspection, files } = await images.inspect();
    const source = await this.nodes.get(cp.sourceNodeId);
    return {
      checkpoint: cp.id,
      mode: cp.mode ?? 'storage',
      workloadId: cp.workloadId,
      storageNodeId: cp.storageNodeId,
      imageDir: cp.imageDir,
      writer: {
        nodeId: cp.sourceNodeId,
        ...(cp.criuVersion ? { criuVersion: cp.criuVersion } : {}),
        ...(source?.probe?.kernel ? { kernel: source.probe.kernel } : {}),
      },
      imageFiles: files,
      inspection,
      ...(container
        ? {
            container: {
              ...container.metadata,
              archive: `${cp.imageDir}/${CONTAINER_ARCHIVE}`,
              unpackedNow: container.unpacked,
            },
          }
        : {}),
      durationMs: this.clock.now().getTime() - started,
    };
  }

  async search(
    id: string,
    body: SearchCheckpoint,
    stream?: SearchStream,
  ): Promise<SearchResult & { checkpoint: string; durationMs: number; cancelled?: true }> {
    let pattern: Uint8Array;
    try {
      pattern = patternBytes(body.pattern, body.encoding);
    } catch (error) {
      throw new BadRequestError(`pattern: ${(error as Error).message}`);
    }
    const started = this.clock.now().getTime();
    const { cp, images } = await this.open(id);
    const deadline = started + body.timeoutMs;
    stream?.onOpen();
    const result = await images.search(pattern, {
      maxHits: body.maxHits,
      context: body.context,
      expired: () => stream?.cancelled() === true || this.clock.now().getTime() >= deadline,
      ...(stream ? { onHit: stream.onHit } : {}),
    });
    return {
      checkpoint: cp.id,
      ...result,
      ...(stream?.cancelled() ? { cancelled: true as const } : {}),
      durationMs: this.clock.now().getTime() - started,
    };
  }

  /**
   * The archive stream (Podman's layout) and what it could not fill: tar on the storage node, or for an encrypted
   * checkpoint built here from the decrypted images (StoredImages.export), the key never leaving the orchestrator.
   */
  async export(id: string): Promise<{ proc: ArchiveStream; layout: ExportLayout; filename: string }> {
    const cp = await this.stored(id);
    const filename = `checkpoint-${cp.workloadId}-${cp.id}.tar`;
    if (cp.kind === 'podman' || cp.container) {
      // Podman's own export is already the layout checkpointctl and crit read: it goes out as stored (decrypted
      // here when it is encrypted).
      const storage = await this.storage(cp);
      const proc = cp.encryption
        ? await StoredImages.of(this.ops, storage, cp, this.config?.checkpointKey).exportFile(CONTAINER_ARCHIVE)
        : await this.ops.sendImageFile(storage, cp.imageDir, CONTAINER_ARCHIVE);
      return { proc, layout: { files: {}, unfilled: [] }, filename };
    }
    const images = StoredImages.of(this.ops, await this.storage(cp), cp, this.config?.checkpointKey);
    const source = await this.nodes.get(cp.sourceNodeId);
    const { proc, layout } = await images.export(
      {
        checkpointId: cp.id,
        workloadId: cp.workloadId,
        ...(cp.workloadName ? { workloadName: cp.workloadName } : {}),
        createdAt: cp.createdAt,
        ...(cp.storedAt ? { storedAt: cp.storedAt } : {}),
        mode: cp.mode ?? 'storage',
        sourceNodeId: cp.sourceNodeId,
        ...(cp.criuVersion ? { criuVersion: cp.criuVersion } : {}),
        ...(source?.probe?.kernel ? { kernel: source.probe.kernel } : {}),
      },
      `${cp.imageDir}.export-${randomBytes(4).toString('hex')}`,
    );
    return { proc, layout, filename };
  }

  /**
   * A checkpoint whose images are on its storage node; a container's are first unpacked from its archive
   * (container-images.ts: guarded, once; an encrypted one's by the orchestrator, stored back encrypted).
   */
  private async open(id: string): Promise<{ cp: CheckpointRecord; images: StoredImages; container?: ContainerImages }> {
    const cp = await this.stored(id);
    const storage = await this.storage(cp);
    if (cp.kind === 'podman' || cp.container) {
      const container = await openContainerImages(this.ops, storage, cp, this.config?.checkpointKey);
      return { cp, images: container.images, container };
    }
    return { cp, images: StoredImages.of(this.ops, storage, cp, this.config?.checkpointKey) };
  }

  /** Stored, or restored: the images stay until DELETE. */
  private async stored(id: string): Promise<CheckpointRecord> {
    const cp = await this.checkpoints.get(id);
    if (!cp) throw new NotFoundError('checkpoint', id);
    if (cp.state !== 'stored' && cp.state !== 'restored' && cp.state !== 'restoring') {
      throw new ConflictError(`checkpoint '${cp.id}' is ${cp.state}: it has no complete images to read`, {
        state: cp.state,
      });
    }
    return cp;
  }

  private async storage(cp: CheckpointRecord): Promise<NodeRecord> {
    const storage = await this.nodes.get(cp.storageNodeId);
    if (!storage) throw new NotFoundError('node', cp.storageNodeId);
    return storage;
  }
}
