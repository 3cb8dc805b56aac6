// The spotlift dashboard: a snapshot from the REST reads, then live from GET /events. The token is sent as a
// bearer header only (never in a URL: URLs end up in logs), so the stream is read with fetch() and parsed here
// rather than with EventSource, which cannot set headers. No framework: small enough to read in one sitting.

const TOKEN_KEY = 'spotlift.token';
const RECENT = 25;
const CHART_POINTS = 200;
const STRATEGY_COLORS = {
  'stop-and-copy': '#175cd3',
  'pre-copy': '#12805c',
  'post-copy': '#b54708',
  hybrid: '#7a5af8',
  auto: '#667085',
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  nodes: new Map(),
  migrations: new Map(),
  evacuations: new Map(),
  events: [],
  lastEventId: undefined,
  stream: undefined,
  problem: undefined,
};

const $ = (sel) => document.querySelector(sel);

/** Text for HTML: everything shown comes from records, so everything is escaped. */
function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) ((n /= 1024), i++);
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function ms(n) {
  if (n === undefined || n === null) return '';
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`;
}

/** "in 1m 05s" until a deadline, "passed 12s ago" after it. */
function countdown(deadline) {
  const left = Math.round((Date.parse(deadline) - Date.now()) / 1000);
  const abs = Math.abs(left);
  const text =
    abs >= 3600
      ? `${Math.floor(abs / 3600)}h ${String(Math.floor((abs % 3600) / 60)).padStart(2, '0')}m`
      : abs >= 60
        ? `${Math.floor(abs / 60)}m ${String(abs % 60).padStart(2, '0')}s`
        : `${abs}s`;
  return left >= 0 ? `in ${text}` : `passed ${text} ago`;
}

function badge(s) {
  return `<span class="badge" data-state="${esc(s)}">${esc(String(s).replace('_', ' '))}</span>`;
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : '';
}

// ---- talking to the API -------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${state.token}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new HttpError(res.status, body.message || `${res.status} ${res.statusText}`);
  return body;
}

/** Shows what is wrong in words (a 503 is Redis, a 401 the token), or clears it. */
function setProblem(problem) {
  state.problem = problem;
  const banner = $('#banner');
  banner.hidden = !problem;
  banner.textContent = problem || '';
}

function explain(error) {
  if (error.status === 503) return 'Redis is unreachable: the orchestrator cannot read its records (retrying)';
  if (error.status === 401) return 'the token was refused';
  if (error.status === 403) return `the token may not read this: ${error.message}`;
  return `cannot reach the orchestrator: ${error.message}`;
}

async function loadSnapshot() {
  const [nodes, migrations, evacuations] = await Promise.all([api('/nodes'), api('/migrations'), api('/evacuations')]);
  state.nodes = new Map(nodes.map((n) => [n.id, n]));
  state.migrations = new Map(migrations.map((m) => [m.id, m]));
  state.evacuations = new Map(evacuations.map((e) => [e.id, e]));
}

/**
 * The records again once Redis is back. The first reads may still meet a 503 (the API's view of Redis lags the
 * stream's by a moment): retried every second for up to 30 s, the banner saying why meanwhile.
 */
async function reloadAfterOutage() {
  for (let i = 0; ; i++) {
    try {
      await loadSnapshot();
      setProblem(undefined);
      render();
      return;
    } catch (error) {
      setProblem(explain(error));
      if (i >= 30) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Re-reads a record an event named (debounced per record): the event says what changed, the record says all. */
const pending = new Map();
function refresh(kind, id) {
  const key = `${kind}/${id}`;
  if (pending.has(key)) return;
  pending.set(
    key,
    setTimeout(async () => {
      pending.delete(key);
      try {
        const rec = await api(`/${kind}/${encodeURIComponent(id)}`);
        ({ nodes: state.nodes, migrations: state.migrations, evacuations: state.evacuations })[kind].set(id, rec);
        render();
      } catch (error) {
        if (error.status === 404) {
          ({ nodes: state.nodes, migrations: state.migrations, evacuations: state.evacuations })[kind].delete(id);
          render();
        } else setProblem(explain(error));
      }
    }, 250),
  );
}

// ---- the event stream ---------------------------------------------------------------------------------

function setLink(s, text) {
  const el = $('#link');
  el.dataset.state = s;
  el.textContent = text;
}

/** Reads GET /events as Server-Sent Events, resuming after the last id seen; reconnects after any end. */
async function follow() {
  const controller = new AbortController();
  state.stream = controller;
  const headers = { authorization: `Bearer ${state.token}` };
  if (state.lastEventId) headers['last-event-id'] = state.lastEventId;
  try {
    const res = await fetch('/events', { headers, signal: controller.signal });
    if (!res.ok) throw new HttpError(res.status, (await res.json().catch(() => ({}))).message || res.statusText);
    setLink('live', 'live');
    if (state.problem) {
      setProblem(undefined);
      await loadSnapshot().catch(() => undefined);
      render();
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        onFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error.status === 401) return logout('the token was refused');
    if (error instanceof HttpError) setProblem(explain(error));
  }
  if (controller.signal.aborted) return;
  setLink('reconnecting', 'reconnecting');
  setTimeout(follow, 2000);
}

function onFrame(text) {
  let id;
  let type = 'message';
  const data = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) continue; // heartbeat
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return;
  if (id) state.lastEventId = id;
  if (type === 'redis') {
    // The stream stays open through a Redis outage and goes on where it was once Redis is back.
    if (JSON.parse(data.join('\n')).reachable) {
      setLink('live', 'live');
      setProblem(undefined);
      void reloadAfterOutage();
    } else {
      setLink('down', 'waiting for Redis');
      setProblem(explain({ status: 503 }));
    }
    return;
  }
  if (type === 'gap') {
    // Events we missed were trimmed from the stream: start again from the records.
    void loadSnapshot().then(render, () => undefined);
    return;
  }
  onEvent(JSON.parse(data.join('\n')));
}

function onEvent(e) {
  state.events.unshift(e);
  state.events.length = Math.min(state.events.length, 100);
  if (e.migration) {
    const m = state.migrations.get(e.migration);
    if (m) applyToMigration(m, e);
    refresh('migrations', e.migration);
  }
  if (e.type.startsWith('node.')) {
    const n = state.nodes.get(e.nodes[0]);
    if (e.type === 'node.removed') state.nodes.delete(e.nodes[0]);
    else if (n) Object.assign(n, { state: e.node.state, zone: e.node.zone, spotPool: e.node.spotPool });
    if (e.type !== 'node.removed') refresh('nodes', e.nodes[0]);
  }
  if (e.evacuation) refresh('evacuations', e.evacuation);
  render();
}

/** What an event says, applied at once (the record re-read follows and brings the rest). */
function applyToMigration(m, e) {
  if (e.type === 'migration.phase' && e.status === 'started') m.phases.push({ name: e.phase, startedAt: e.at });
  if (e.type === 'migration.phase' && e.status === 'ended') {
    const p = [...m.phases].reverse().find((x) => x.name === e.phase && !x.endedAt);
    if (p) Object.assign(p, { endedAt: e.at, ok: e.ok, durationMs: e.durationMs });
  }
  if (e.type === 'migration.state') m.state = e.state;
  if (e.type === 'migration.downtime') m.downtimeMs = e.downtimeMs;
  if (e.type === 'migration.round') (m.rounds ||= []).push(e.round);
  if (e.type === 'migration.fill') m.postCopy = e.progress;
}

// ---- rendering ----------------------------------------------------------------------------------------

let frame = 0;
function render() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    renderNodes();
    renderEvacuations();
    renderMigrations();
    renderCharts();
    renderEvents();
  });
}

/**
 * The notice a node is under: its open evacuation, or, while the node is still marked terminating or draining,
 * its latest one (an empty node's evacuation ends at once, and the deadline still stands).
 */
function noticeOf(node) {
  const mine = [...state.evacuations.values()]
    .filter((e) => e.nodeId === node.id)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const open = mine.find((e) => !['completed', 'partial', 'failed'].includes(e.state));
  if (open) return open;
  return node.state === 'terminating' || node.state === 'draining' ? mine[0] : undefined;
}

function renderNodes() {
  const nodes = [...state.nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
  $('#nodes tbody').innerHTML = nodes.length
    ? nodes
        .map((n) => {
          const evac = noticeOf(n);
          const notice = evac
            ? `${esc(evac.notice.kind)} (${esc(evac.notice.source)}): <span class="countdown" data-deadline="${esc(evac.deadline)}">${esc(countdown(evac.deadline))}</span>`
            : '';
          const mem =
            n.probe?.memAvailableBytes !== undefined
              ? `${bytes(n.probe.memAvailableBytes)}${n.probe.memTotalBytes ? ` of ${bytes(n.probe.memTotalBytes)}` : ''}`
              : '';
          return (
            `<tr data-node="${esc(n.id)}"><td>${esc(n.id)}</td><td>${badge(n.state)}</td><td>${esc(n.zone)}</td>` +
            `<td>${esc(n.spotPool)}</td><td>${esc(n.lifecycle)}</td><td>${mem}</td><td data-field="notice">${notice}</td></tr>`
          );
        })
        .join('')
    : '<tr><td colspan="7" class="empty">no nodes yet: add one with POST /nodes or the config file</td></tr>';
}

function renderEvacuations() {
  const list = [...state.evacuations.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, 10);
  $('#evacuations').innerHTML = list.length
    ? list
        .map((e) => {
          const moved = e.jobs.filter((j) => j.state === 'completed' || j.state === 'checkpointed').length;
          const jobs = e.jobs
            .map(
              (j) =>
                `<tr data-workload="${esc(j.workloadId)}"><td>${esc(j.order ?? '')}</td><td>${esc(j.workloadName || j.workloadId)}</td>` +
                `<td>${esc(j.destinationNodeId)}</td><td>${esc(j.strategy)}</td><td>${badge(j.state)}</td>` +
                `<td>${esc(ms(j.downtimeMs))}</td><td class="muted">${esc(j.missReason || j.error || '')}</td></tr>`,
            )
            .join('');
          const finished = ['completed', 'partial', 'failed'].includes(e.state);
          return (
            `<div class="evac" data-evacuation="${esc(e.id)}">` +
            `<strong>${esc(e.nodeId)}</strong> ${badge(e.state)} ${esc(e.notice.kind)} from ${esc(e.notice.source)}, deadline ` +
            (finished
              ? esc(time(e.deadline))
              : `<span class="countdown" data-deadline="${esc(e.deadline)}">${esc(countdown(e.deadline))}</span>`) +
            ` &middot; ${moved}/${e.jobs.length} moved` +
            (e.plan ? ` &middot; <span class="muted">${esc(e.plan.summary)}</span>` : '') +
            (e.outcome ? ` &middot; ${esc(e.outcome.summary)}` : '') +
            (jobs
              ? `<table><thead><tr><th>#</th><th>workload</th><th>to</th><th>strategy</th><th>state</th><th>downtime</th><th></th></tr></thead><tbody>${jobs}</tbody></table>`
              : '') +
            '</div>'
          );
        })
        .join('')
    : '<p class="empty">no evacuations</p>';
}

function phases(m) {
  return m.phases
    .map(
      (p) =>
        `<span class="phase" data-phase="${esc(p.name)}" data-ok="${p.ok === undefined ? '' : p.ok}" data-open="${!p.endedAt}">` +
        `${esc(p.name)}${p.durationMs !== undefined ? ` ${esc(ms(p.durationMs))}` : ''}</span>`,
    )
    .join('');
}

function progress(m) {
  const parts = [];
  if (m.rounds?.length) {
    const last = m.rounds[m.rounds.length - 1];
    parts.push(`round ${last.round}: ${bytes(last.bytes)} at ${bytes(last.bandwidthBytesPerSec)}/s`);
  }
  const fill = m.postCopy || m.precopy?.lazyFill;
  if (fill)
    parts.push(
      fill.allPagesAt
        ? `all pages in (${ms(fill.pagesAfterResumeMs)} after resume)`
        : `lazy pages: ${fill.lazyPages ?? 0}`,
    );
  if (m.downtimeMs !== undefined) parts.push(`downtime ${ms(m.downtimeMs)}`);
  return esc(parts.join(' · '));
}

function route(m) {
  return `${esc(m.sourceNodeId)} &rarr; ${esc(m.destinationNodeId)}`;
}

function renderMigrations() {
  const all = [...state.migrations.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const live = all.filter((m) => m.state === 'queued' || m.state === 'running');
  $('#inflight tbody').innerHTML = live.length
    ? live
        .map(
          (m) =>
            `<tr data-migration="${esc(m.id)}"><td>${esc(m.id)}</td><td>${esc(m.workloadId)}</td><td>${route(m)}</td>` +
            `<td>${esc(m.strategy)}</td><td data-field="phases">${phases(m)}</td><td data-field="progress">${progress(m)}</td></tr>`,
        )
        .join('')
    : '<tr><td colspan="6" class="empty">nothing moving</td></tr>';
  const done = all.filter((m) => m.state !== 'queued' && m.state !== 'running').slice(0, RECENT);
  $('#recent tbody').innerHTML = done.length
    ? done
        .map(
          (m) =>
            `<tr data-migration="${esc(m.id)}"><td>${esc(m.id)}</td><td>${esc(m.workloadId)}</td><td>${route(m)}</td>` +
            `<td>${esc(m.strategy)}</td><td data-field="outcome">${badge(m.state)} <span class="muted">${esc(m.rollbackReason || m.error || '')}</span></td>` +
            `<td data-field="downtime">${esc(ms(m.downtimeMs))}</td><td>${esc(time(m.updatedAt))}</td></tr>`,
        )
        .join('')
    : '<tr><td colspan="7" class="empty">no migrations yet</td></tr>';
}

/** Downtime per migration over time (one dot each, coloured by strategy) and the mean and max per strategy. */
function renderCharts() {
  const points = [...state.migrations.values()]
    .filter((m) => m.downtimeMs !== undefined && m.state === 'completed')
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .slice(-CHART_POINTS);
  const W = 600,
    H = 220,
    L = 50,
    B = 24;
  if (points.length === 0) {
    $('#chart-time').innerHTML =
      `<svg viewBox="0 0 ${W} ${H}"><text x="${W / 2}" y="${H / 2}" text-anchor="middle">no completed migration with a downtime yet</text></svg>`;
    $('#chart-strategy').innerHTML = '';
    return;
  }
  const t0 = Date.parse(points[0].createdAt);
  const t1 = Math.max(Date.parse(points[points.length - 1].createdAt), t0 + 1);
  const max = Math.max(...points.map((m) => m.downtimeMs), 1);
  const x = (m) => L + ((Date.parse(m.createdAt) - t0) / (t1 - t0)) * (W - L - 10);
  const y = (v) => H - B - (v / max) * (H - B - 10);
  const dots = points
    .map(
      (m) =>
        `<circle data-migration="${esc(m.id)}" cx="${x(m).toFixed(1)}" cy="${y(m.downtimeMs).toFixed(1)}" r="4" fill="${STRATEGY_COLORS[m.strategy] || '#000'}"><title>${esc(m.id)} ${esc(m.strategy)}: ${esc(ms(m.downtimeMs))}</title></circle>`,
    )
    .join('');
  $('#chart-time').innerHTML =
    `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="downtime per migration over time">` +
    `<line x1="${L}" y1="${H - B}" x2="${W}" y2="${H - B}" stroke="#ccc"/><line x1="${L}" y1="0" x2="${L}" y2="${H - B}" stroke="#ccc"/>` +
    `<text x="${L - 4}" y="14" text-anchor="end">${esc(ms(max))}</text><text x="${L - 4}" y="${H - B}" text-anchor="end">0</text>` +
    `<text x="${L}" y="${H - 6}">${esc(time(points[0].createdAt))}</text><text x="${W - 10}" y="${H - 6}" text-anchor="end">${esc(time(points[points.length - 1].createdAt))}</text>` +
    `${dots}</svg>`;
  const by = new Map();
  for (const m of points) (by.get(m.strategy) || by.set(m.strategy, []).get(m.strategy)).push(m.downtimeMs);
  const rows = [...by.entries()];
  // Narrower than the time chart (it gets a third of the row): its own width keeps its labels readable.
  const SW = 300;
  const bw = (SW - L) / Math.max(rows.length, 1);
  const bars = rows
    .map(([s, v], i) => {
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const top = Math.max(...v);
      const bx = L + i * bw + bw * 0.2;
      return (
        `<g data-strategy="${esc(s)}"><rect x="${bx.toFixed(1)}" y="${y(mean).toFixed(1)}" width="${(bw * 0.6).toFixed(1)}" height="${(H - B - y(mean)).toFixed(1)}" fill="${STRATEGY_COLORS[s] || '#000'}"><title>${esc(s)}: mean ${esc(ms(mean))}, max ${esc(ms(top))}, ${v.length} migrations</title></rect>` +
        `<line x1="${bx.toFixed(1)}" x2="${(bx + bw * 0.6).toFixed(1)}" y1="${y(top).toFixed(1)}" y2="${y(top).toFixed(1)}" stroke="#000"/>` +
        `<text x="${(bx + bw * 0.3).toFixed(1)}" y="${H - 6}" text-anchor="middle">${esc(s)} (${v.length})</text></g>`
      );
    })
    .join('');
  $('#chart-strategy').innerHTML =
    `<svg viewBox="0 0 ${SW} ${H}" role="img" aria-label="mean (bar) and max (line) downtime per strategy">` +
    `<line x1="${L}" y1="${H - B}" x2="${SW}" y2="${H - B}" stroke="#ccc"/><text x="${L - 4}" y="14" text-anchor="end">${esc(ms(max))}</text>${bars}</svg>`;
}

function describe(e) {
  const what = {
    'migration.queued': () => `${e.migration} queued: ${e.source} -> ${e.destination} (${e.strategy}, ${e.transport})`,
    'migration.phase': () =>
      `${e.migration} ${e.phase} ${e.status}${e.durationMs !== undefined ? ` in ${ms(e.durationMs)}` : ''}${e.ok === false ? ' (failed)' : ''}`,
    'migration.round': () => `${e.migration} pre-copy round ${e.round.round}: ${bytes(e.round.bytes)}`,
    'migration.fill': () => `${e.migration} lazy pages ${e.done ? 'all in' : (e.progress.lazyPages ?? '')}`,
    'migration.downtime': () => `${e.migration} downtime ${ms(e.downtimeMs)}`,
    'migration.state': () =>
      `${e.migration} ${e.state}${e.rollbackReason ? `: ${e.rollbackReason}` : e.error ? `: ${e.error}` : ''}`,
    'node.updated': () => `${e.nodes[0]} ${e.previousState ? `${e.previousState} -> ` : ''}${e.node.state}`,
    'node.removed': () => `${e.nodes[0]} removed`,
    notice: () => `${e.nodes[0]}: ${e.kind} notice from ${e.source}, deadline ${time(e.deadline)}`,
    'notice.deadline': () => `${e.nodes[0]}: deadline moved to ${time(e.to)}`,
    'evacuation.plan': () => `${e.evacuation} plan: ${e.plan?.summary ?? `${e.jobs.length} jobs`}`,
    'evacuation.job': () => `${e.evacuation} ${e.workload} ${e.state}`,
    'evacuation.state': () => `${e.evacuation} ${e.state}${e.outcome ? `: ${e.outcome.summary}` : ''}`,
  }[e.type];
  return what ? what() : e.type;
}

function renderEvents() {
  $('#events').innerHTML = state.events.length
    ? state.events
        .slice(0, 50)
        .map((e) => `<li data-type="${esc(e.type)}">${esc(time(e.at))} ${esc(describe(e))}</li>`)
        .join('')
    : '<li class="empty">waiting for events</li>';
}

function tick() {
  for (const el of document.querySelectorAll('[data-deadline]')) el.textContent = countdown(el.dataset.deadline);
}

// ---- start --------------------------------------------------------------------------------------------

function logout(reason) {
  state.stream?.abort();
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = '';
  $('#board').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  setLink('idle', 'not connected');
  const err = $('#login-error');
  err.hidden = !reason;
  err.textContent = reason || '';
}

async function start() {
  try {
    await loadSnapshot();
  } catch (error) {
    if (error.status === 401 || error.status === 403) return logout(explain(error));
    setProblem(explain(error));
  }
  $('#login').hidden = true;
  $('#board').hidden = false;
  $('#logout').hidden = false;
  render();
  void follow();
}

$('#login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('#token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $('#token').value = '';
  void start();
});
$('#logout').addEventListener('click', () => logout());
setInterval(tick, 1000);
if (state.token) void start();
else logout();
