import { randomBytes } from 'node:crypto';
import { classifyCriuFailure, criuErrorLines } from '@spotlift/criu';
import type { NodeRecord, PostCopyTrialRecord } from '@spotlift/domain';
import type { PostCopyTrials } from '@spotlift/store';
import type { DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../node-ops/process/criu-commands.js';
import type { EngineConfig } from '../engine.types.js';
import * as live from '../node-ops/process/live-commands.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import { trialName } from '../sweeper/trial-leftovers.js';
import { dataAddress } from '../transports/page-transport.port.js';
import { type LazyEnds, LazyTransfer } from './lazy-transfer.js';
import type { LiveConfig } from './live-config.js';

/** What to change on the nodes, from the class of CRIU failure the trial ran into. */
function adviceFor(reason: string, ends: LazyEnds): string {
  const f = classifyCriuFailure(reason);
  if (/pipe-max-size|page-pipe: tee/.test(reason)) {
    return `raise fs.pipe-max-size on ${ends.source.id} (sysctl -w fs.pipe-max-size=268435456; CRIU needs page pipes above the 1 MiB default and lacks CAP_SYS_RESOURCE to exceed it), or run CRIU with CAP_SYS_RESOURCE`;
  }
  if (f.kind === 'unsupported_feature')
    return `enable userfaultfd on ${ends.destination.id} (CONFIG_USERFAULTFD, uffd-noncoop)`;
  if (f.kind === 'page_server_connection' || /Connection refused|No route|timed out/i.test(reason)) {
    return `let ${ends.destination.id} reach ${dataAddress(ends.source)} over TCP (the lazy-pages daemon connects to the source's page server)`;
  }
  if (f.kind === 'permission')
    return 'run CRIU as root (or with CAP_CHECKPOINT_RESTORE and CAP_SYS_RESOURCE) on both nodes';
  return `read the CRIU logs of the trial (rerun with keepImages) on ${ends.source.id} and ${ends.destination.id}`;
}

/**
 * A real post-copy migration of a tiny probe process on one node pair, because a feature probe is no proof
 * (`uffd-noncoop` says yes where the lazy transfer then fails on fs.pipe-max-size). The result is cached per
 * pair with a TTL (shorter for failures, which an operator may fix with a sysctl).
 */
export class PostCopyTrialRunner {
  private readonly lazy: LazyTransfer;

  constructor(
    private readonly ops: NodeOps,
    private readonly streamer: DirectoryStreamer,
    private readonly trials: PostCopyTrials,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
    private readonly live: LiveConfig,
  ) {
    this.lazy = new LazyTransfer(ops, live.trialTimeoutMs);
  }

  cached(source: NodeRecord, destination: NodeRecord): Promise<PostCopyTrialRecord | undefined> {
    return this.trials.get(source.id, destination.id);
  }

  /** Runs the trial now and caches its result. Never throws: a trial that cannot even start is a failure. */
  async run(source: NodeRecord, destination: NodeRecord): Promise<PostCopyTrialRecord> {
    const t0 = this.clock.now().getTime();
    // The probe is named after its directory: what the sweeper matches when a dead orchestrator left both.
    const name = trialName(randomBytes(4).toString('hex'));
    const dir = `${this.config.imageRoot}/${name}`;
    const ends: LazyEnds = { source, destination, sourceDir: `${dir}/src`, destinationDir: `${dir}/dst` };
    let reason: string | undefined;
    try {
      reason = await this.attempt(ends, name);
    } catch (e) {
      reason = (e as Error).message;
    }
    const record: PostCopyTrialRecord = {
      sourceNodeId: source.id,
      destinationNodeId: destination.id,
      ok: reason === undefined,
      at: this.clock.now().toISOString(),
      durationMs: this.clock.now().getTime() - t0,
      ...(reason !== undefined ? { reason: reason.slice(0, 1000), advice: adviceFor(reason, ends) } : {}),
    };
    await this.trials.put(record, record.ok ? this.live.trialTtlOkMs : this.live.trialTtlFailedMs);
    return record;
  }

  /** The whole post-copy sequence on the probe; returns why it failed, or undefined when it worked. */
  private async attempt(ends: LazyEnds, name: string): Promise<string | undefined> {
    const { source, destination } = ends;
    const lifeS = Math.ceil(this.live.trialTimeoutMs / 1000) + 60;
    let probe: number | undefined;
    let restored: number | undefined;
    try {
      await Promise.all([this.ops.makeDir(source, ends.sourceDir), this.ops.makeDir(destination, ends.destinationDir)]);
      const started = await this.ops.startProbeProcess(source, lifeS, name);
      probe = Number(/^PROBE_PID (\d+)$/m.exec(started.stdout)?.[1] ?? NaN);
      if (!Number.isInteger(probe))
        return `the probe process did not start on ${source.id}: ${started.stderr.trim().slice(0, 300)}`;
      const serve = { address: dataAddress(source), port: this.pickPort() };
      await this.lazy.startDump(ends, probe, serve);
      await this.streamer.copy(source, ends.sourceDir, destination, ends.destinationDir, {
        exclude: ['./*.log', ...live.LAZY_WRAPPER_FILES],
      });
      await this.lazy.startDaemon(ends, serve);
      const res = await this.ops.restoreProbe(destination, ends.destinationDir, this.live.trialTimeoutMs);
      restored = Number(/RESTORED_PID (\d+)/.exec(res.stdout)?.[1] ?? NaN);
      if (res.code !== 0 || !Number.isInteger(restored)) {
        const log = await this.ops.tail(destination, `${ends.destinationDir}/restore.log`, 200);
        return `${criu.explainFailure('restore --lazy-pages', destination.id, log || res.stderr, res.code)}${await this.sourceAccount(ends)}`;
      }
      const pages = await this.lazy.waitAllPages(ends, this.live.trialTimeoutMs);
      if (!pages.complete) return `${pages.reason ?? 'pages did not all arrive'}${await this.sourceAccount(ends)}`;
      const state = await this.ops.processState(destination, restored);
      if (!['R', 'S', 'D'].includes(state))
        return `the restored probe on ${destination.id} is not running after all pages arrived (state ${state})`;
      return undefined;
    } catch (e) {
      return (e as Error).message;
    } finally {
      if (restored !== undefined && Number.isInteger(restored))
        await this.ops.killTree(destination, restored).catch(() => undefined);
      await this.lazy.stop(ends);
      if (probe !== undefined && Number.isInteger(probe)) await this.ops.killTree(source, probe).catch(() => undefined);
      await Promise.all([
        this.ops.removeDir(source, ends.sourceDir.replace(/\/src$/, '')),
        this.ops.removeDir(destination, ends.destinationDir.replace(/\/dst$/, '')),
      ]);
    }
  }

  /** The source's lazy dump usually says why the destination starved (e.g. `page-pipe: tee ... EPERM`). */
  private async sourceAccount(ends: LazyEnds): Promise<string> {
    const log = await this.ops.tail(ends.source, `${ends.sourceDir}/dump.log`, 60).catch(() => '');
    return criuErrorLines(log).length
      ? ` | the source says: ${criu.explainFailure('dump --lazy-pages', ends.source.id, log, null)}`
      : '';
  }

  private pickPort(): number {
    const { pageServerPortMin: lo, pageServerPortMax: hi } = this.config;
    return lo + Math.floor(Math.random() * (hi - lo + 1));
  }
}
