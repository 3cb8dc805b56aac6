import { z } from 'zod';

/**
 * The slice of a Kubernetes Node we read, validated with zod: watch events are untrusted input like any
 * other payload. Unknown fields are kept out; times stay RFC 3339 strings as on the wire.
 */
export const kubeNodeSchema = z.object({
  metadata: z.object({
    name: z.string().min(1),
    resourceVersion: z.string().optional(),
    labels: z.record(z.string(), z.string()).nullish(),
    annotations: z.record(z.string(), z.string()).nullish(),
  }),
  spec: z
    .object({
      taints: z
        .array(
          z.object({
            key: z.string(),
            value: z.string().nullish(),
            effect: z.string(),
            timeAdded: z.string().nullish(),
          }),
        )
        .nullish(),
    })
    .optional(),
  status: z
    .object({
      conditions: z
        .array(
          z.object({
            type: z.string(),
            status: z.string(),
            reason: z.string().nullish(),
            message: z.string().nullish(),
            lastTransitionTime: z.string().nullish(),
          }),
        )
        .nullish(),
    })
    .optional(),
});

/** A validated Node. */
export type KubeNode = z.infer<typeof kubeNodeSchema>;

/** `GET /api/v1/nodes`: the items (unvalidated) and the list's resourceVersion to watch from. */
export interface KubeNodeList {
  resourceVersion: string;
  items: unknown[];
}

/** Watch event types of the Kubernetes watch protocol. */
export type KubeWatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** Parameters of one watch request. */
export interface KubeWatchParams {
  resourceVersion: string;
  /** Server-side end of this watch; the caller reconnects from the last resourceVersion. */
  timeoutSeconds?: number;
  allowWatchBookmarks?: boolean;
}

/** A running watch. */
export interface KubeWatchHandle {
  abort(): void;
}

/** A failed list or watch request; `status` is the HTTP status when one was received (410 = Gone). */
export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeApiError';
  }
}

/** What a cordon found: the Node was already unschedulable (nothing written), or it is now. */
export interface KubeCordonResult {
  alreadyCordoned: boolean;
}

/**
 * Port: list, watch and cordon Nodes. The only implementation that talks to a real API server lives in
 * `client-node-kube-api.adapter.ts`, so everything else is testable without `@kubernetes/client-node`.
 */
export abstract class KubeNodeApi {
  /** Lists every Node. Rejects with {@link KubeApiError}. */
  abstract listNodes(signal?: AbortSignal): Promise<KubeNodeList>;

  /**
   * Starts a watch. `onEvent` gets each event as received; `onDone` is called exactly once when the
   * stream ends: with no error for a clean close, else with a {@link KubeApiError} (status 410 = Gone).
   */
  abstract watchNodes(
    params: KubeWatchParams,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err?: KubeApiError) => void,
  ): Promise<KubeWatchHandle>;

  /**
   * Cordons a Node as `kubectl cordon` does: reads it, and unless `spec.unschedulable` is already true,
   * sets it with a strategic-merge patch. Idempotent. Rejects with {@link KubeApiError} (404: no such Node).
   */
  abstract cordonNode(name: string): Promise<KubeCordonResult>;

  /**
   * Sets (a string) or removes (`null`) one annotation of a Node with a JSON merge patch
   * (`application/merge-patch+json`), touching nothing else. Rejects with {@link KubeApiError} (404: no such Node).
   */
  abstract annotateNode(name: string, key: string, value: string | null): Promise<void>;
}
