import type {
  ApiTokenRecord,
  AuditEntry,
  CheckpointRecord,
  EvacuationRecord,
  MigrationRecord,
  NodeRecord,
  WorkloadRecord,
} from '@spotlift/domain';

const MiB = 2 ** 20;

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function nodesTable(nodes: NodeRecord[]): string {
  return table([
    ['ID', 'ADDRESS', 'STATE', 'CRIU', 'FEATURES', 'MEM FREE', 'ZONE'],
    ...nodes.map((n) => [
      n.id,
      `${n.host}:${n.port}`,
      n.state,
      n.probe?.criuOk ? (n.probe.criuVersion ?? 'ok') : 'no',
      Object.entries(n.probe?.features ?? {})
        .filter(([, v]) => v)
        .map(([k]) => k)
        .join(',') || '-',
      n.probe?.memAvailableBytes ? `${Math.round(n.probe.memAvailableBytes / MiB)} MiB` : '-',
      n.zone ?? '-',
    ]),
  ]);
}

export function workloadsTable(ws: WorkloadRecord[]): string {
  return table([
    ['ID', 'NAME', 'NODE', 'PID', 'RSS', 'STATE'],
    ...ws.map((w) => [
      w.id,
      w.name,
      w.nodeId,
      String(w.pid),
      w.rssBytes ? `${Math.round(w.rssBytes / MiB)} MiB` : '-',
      w.state,
    ]),
  ]);
}

export function migrationsTable(ms: MigrationRecord[]): string {
  return table([
    ['ID', 'WORKLOAD', 'FROM', 'TO', 'STATE', 'DOWNTIME'],
    ...ms.map((m) => [m.id, m.workloadId, m.sourceNodeId, m.destinationNodeId, m.state, ms2(m.downtimeMs)]),
  ]);
}

function ms2(v: number | undefined): string {
  return v === undefined ? '-' : `${v.toFixed(1)} ms`;
}

export function phaseLine(p: MigrationRecord['phases'][number]): string {
  const mark = p.ok === undefined ? '…' : p.ok ? '✓' : '✗';
  return `  ${mark} ${p.name.padEnd(10)} ${ms2(p.durationMs).padStart(12)}${p.detail ? `  ${p.detail}` : ''}`;
}

export function migrationSummary(m: MigrationRecord, opts: { phases?: boolean } = {}): string {
  const lines = [
    `migration ${m.id}: ${m.state}`,
    `  workload ${m.workloadId}: ${m.sourceNodeId} -> ${m.destinationNodeId} (${m.destinationReason}), ${m.strategy} over ${m.transport}${m.transportRoute ? ` (${m.transportRoute})` : ''}`,
    ...(opts.phases === false ? [] : m.phases.map(phaseLine)),
  ];
  if (m.requestedStrategy && m.requestedStrategy !== m.strategy) lines.push(`  requested ${m.requestedStrategy}`);
  if (m.strategyReason && m.strategyReason !== 'requested') lines.push(`  strategy: ${m.strategyReason}`);
  for (const f of m.fallbacks ?? []) lines.push(`  fallback: ${f}`);
  for (const r of m.rounds ?? []) {
    lines.push(
      `  round ${r.round}: ${r.pagesWritten} pages written, ${r.pagesSkippedParent} from parent, ${ms2(r.durationMs)}, frozen ${ms2(r.frozenMs)}, ${(r.bandwidthBytesPerSec / 2 ** 20).toFixed(1)} MiB/s`,
    );
  }
  if (m.precopy) {
    lines.push(`  pre-copy: ${m.precopy.stopReason}`);
    if (m.precopy.restore) lines.push(`  restore: ${m.precopy.restore} (${m.precopy.restoreReason ?? ''})`);
    const fill = m.precopy.lazyFill;
    if (fill?.allPagesAt)
      lines.push(`  lazy restore: all ${fill.lazyPages ?? 0} pages in ${ms2(fill.pagesAfterResumeMs)} after resume`);
  }
  if (m.files) {
    const r = [...m.files.rounds, ...(m.files.final ? [m.files.final] : [])];
    const copies = r.map((x) => `${x.sent} entries/${x.bytes} B`).join(', ');
    lines.push(
      `  files: ${m.files.synced.length ? `${m.files.synced.join(', ')} copied (${copies}; the last inside the freeze)` : 'nothing to copy'}${m.files.shared.length ? `; on shared storage: ${m.files.shared.join(', ')}` : ''}`,
    );
  }
  if (m.downtimeMs !== undefined)
    lines.push(`  downtime ${ms2(m.downtimeMs)} (frozen ${m.frozenAt} -> resumed ${m.resumedAt})`);
  if (m.postCopy?.allPagesAt)
    lines.push(
      `  post-copy: all ${m.postCopy.lazyPages ?? 0} lazy pages arrived ${ms2(m.postCopy.pagesAfterResumeMs)} after resume`,
    );
  const d = m.criu.dump;
  if (d) {
    lines.push(
      `  criu dump: freezing ${d.freezingTimeUs} µs, frozen ${d.frozenTimeUs} µs, memdump ${d.memdumpTimeUs} µs, memwrite ${d.memwriteTimeUs} µs, pages written ${d.pagesWritten}`,
    );
  }
  const r = m.criu.restore;
  if (r) lines.push(`  criu restore: forking ${r.forkingTimeUs} µs, restore ${r.restoreTimeUs} µs`);
  lines.push(`  bytes: pages ${m.bytes.pages}, image files ${m.bytes.images}`);
  if (m.rollbackReason) lines.push(`  rolled back: ${m.rollbackReason}`);
  else if (m.error) lines.push(`  error: ${m.error}`);
  return lines.join('\n');
}

export function tokensTable(tokens: Array<Omit<ApiTokenRecord, 'secretSha256'>>): string {
  return table([
    ['ID', 'NAME', 'ROLE', 'NODE', 'CREATED', 'EXPIRES', 'REVOKED'],
    ...tokens.map((t) => [t.id, t.name, t.role, t.nodeId ?? '-', t.createdAt, t.expiresAt ?? '-', t.revokedAt ?? '-']),
  ]);
}

export function auditTable(entries: AuditEntry[]): string {
  return table([
    ['AT', 'WHO', 'ROLE', 'CALL', 'TARGETS', 'STATUS', 'DENIED'],
    ...entries.map((e) => [
      e.at,
      e.tokenName ?? e.tokenId ?? '-',
      e.role ?? '-',
      `${e.method} ${e.route}`,
      Object.entries(e.targets)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || '-',
      String(e.status),
      e.denied ?? '',
    ]),
  ]);
}

/** `key  value` lines, the absent ones left out. */
export function details(pairs: Array<[string, string | number | undefined]>): string {
  const shown = pairs.filter((p): p is [string, string | number] => p[1] !== undefined && p[1] !== '');
  const w = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

const mib = (b: number | undefined) => (b === undefined ? undefined : `${Math.round(b / MiB)} MiB`);

export function nodeDetails(n: NodeRecord): string {
  const p = n.probe;
  return details([
    ['id', n.id],
    ['address', `${n.user}@${n.host}:${n.port}`],
    ['state', n.state + (n.drain ? ` (drained ${n.drain.at})` : '')],
    ['zone / pool', [n.zone ?? '-', n.spotPool ?? '-'].join(' / ')],
    ['lifecycle', n.lifecycle],
    ['criu', p ? `${p.criuVersion ?? '?'} ${p.criuOk ? '(check ok)' : '(check failed)'}` : 'not probed'],
    [
      'features',
      Object.entries(p?.features ?? {})
        .map(([k, v]) => `${k}=${v ? 'yes' : 'no'}`)
        .join(' '),
    ],
    ['kernel', p?.kernel],
    ['cpu', p?.cpuModel ? `${p.cpuCount ?? '?'} x ${p.cpuModel}` : undefined],
    ['memory free', mib(p?.memAvailableBytes)],
    ['disk free', mib(p?.diskFreeBytes)],
    ['probed', p?.probedAt],
    ['probe error', p?.error],
  ]);
}

export function workloadDetails(w: WorkloadRecord & { observed?: { state: string; reason?: string } }): string {
  return details([
    ['id', w.id],
    ['name', w.name],
    ['node / pid', `${w.nodeId} / ${w.pid}`],
    ['state', w.state],
    ['observed', w.observed ? w.observed.state + (w.observed.reason ? ` (${w.observed.reason})` : '') : undefined],
    ['rss', mib(w.rssBytes)],
    ['priority', w.priority],
    ['paths', w.paths?.join(', ')],
  ]);
}

export function evacuationsTable(es: EvacuationRecord[]): string {
  return table([
    ['ID', 'NODE', 'KIND', 'STATE', 'DEADLINE', 'JOBS', 'OUTCOME'],
    ...es.map((e) => [
      e.id,
      e.nodeId,
      e.notice.kind,
      e.state,
      e.deadline,
      String(e.jobs.length),
      e.outcome?.summary ?? '-',
    ]),
  ]);
}

export function evacuationSummary(e: EvacuationRecord): string {
  const lines = [
    `evacuation ${e.id}: ${e.state}`,
    `  node ${e.nodeId}, ${e.notice.kind} (${e.notice.source}): ${e.notice.reason}`,
    `  deadline ${e.deadline}, policy ${e.policy}, ${e.replans} re-plans`,
    ...e.jobs.map(
      (j) =>
        `  ${j.order ?? '-'}. ${j.workloadId}: ${j.state}${j.destinationNodeId ? ` -> ${j.destinationNodeId}` : ''}${j.migrationId ? ` (${j.migrationId})` : ''}${j.downtimeMs !== undefined ? `, downtime ${ms2(j.downtimeMs)}` : ''}${j.missReason ? `: ${j.missReason}` : ''}`,
    ),
    ...e.predictedMisses.map((m) => `  predicted miss: ${JSON.stringify(m)}`),
  ];
  if (e.outcome) lines.push(`  outcome: ${e.outcome.summary}`);
  return lines.join('\n');
}

export function checkpointsTable(cs: CheckpointRecord[]): string {
  return table([
    ['ID', 'WORKLOAD', 'FROM', 'STORAGE', 'STATE', 'STORED', 'RESTORED ON'],
    ...cs.map((c) => [
      c.id,
      c.workloadId,
      c.sourceNodeId,
      c.storageNodeId,
      c.state,
      mib(c.bytes.stored) ?? '-',
      c.restore?.destinationNodeId ?? '-',
    ]),
  ]);
}

export function checkpointSummary(c: CheckpointRecord): string {
  const lines = [
    `checkpoint ${c.id}: ${c.state}`,
    `  workload ${c.workloadId} from ${c.sourceNodeId}, stored on ${c.storageNodeId} in ${c.imageDir}`,
    ...c.phases.map(phaseLine),
    `  bytes: pages ${c.bytes.pages}, image files ${c.bytes.images}${c.bytes.stored !== undefined ? `, on disk ${c.bytes.stored}` : ''}`,
  ];
  if (c.restore) {
    lines.push(`  restore #${c.restore.attempt} on ${c.restore.destinationNodeId} (${c.restore.destinationReason})`);
    lines.push(...c.restore.phases.map(phaseLine));
    if (c.restore.error) lines.push(`  restore error: ${c.restore.error}`);
  }
  return lines.join('\n');
}
