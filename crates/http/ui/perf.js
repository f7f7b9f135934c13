// Performance page: throughput and p99 latencies of the last minutes, from /metrics
// scraped every few seconds. /metrics only has counters since the server started, so the
// page keeps its own window of scrapes (from when the dashboard was opened; the sampler
// runs on while the dashboard is open, bounded to WINDOW_MS).

import {metricsText} from './api.js';
import {fill, h, say} from './dom.js';
import {delta, histogram, parse, quantile, sum} from './prom.js';

const EVERY_MS = 2000;
const WINDOW_MS = 10 * 60 * 1000;
const RECENT_MS = 5 * 60 * 1000;  // the span the headline numbers cover

const samples = [];
let sampler = null;
let lastError = '';
const listeners = new Set();

const unary = (l) => l.grpc_type === 'unary';

function extract(samplesText) {
  const s = parse(samplesText);
  return {
    t: Date.now(),
    grpc: sum(s, 'grpc_server_handled_total'),
    kv: ['put', 'range', 'txn', 'delete']
      .map((op) => sum(s, `etcd_mvcc_${op}_total`))
      .reduce((a, b) => (b === null ? a : (a ?? 0) + b), null),
    latency: histogram(s, 'grpc_server_handling_seconds', unary),
    fsync: histogram(s, 'etcd_disk_wal_fsync_duration_seconds'),
    commit: histogram(s, 'etcd_disk_backend_commit_duration_seconds'),
    proposals: sum(s, 'etcd_server_proposals_committed_total'),
  };
}

async function scrape() {
  try {
    samples.push(extract(await metricsText()));
    lastError = '';
  } catch (e) {
    lastError = e.message;
  }
  while (samples.length && samples[0].t < Date.now() - WINDOW_MS) samples.shift();
  for (const f of listeners) f();
}

function ensureSampler() {
  if (sampler) return;
  sampler = setInterval(scrape, EVERY_MS);
}

/** The first sample at or after `since` (the baseline for a rate over the span). */
function baseline(since) {
  return samples.find((s) => s.t >= since) || samples[0];
}

function rate(field, a, b) {
  if (!a || !b || b.t <= a.t || a[field] === null || b[field] === null) return null;
  return (b[field] - a[field]) / ((b.t - a.t) / 1000);
}

const ms = (sec) => (sec === null ? '–' : sec === 'idle' ? 'none' : `${(sec * 1000).toFixed(sec < 0.01 ? 2 : 1)} ms`);
const perSec = (r) => (r === null ? '–' : `${r.toFixed(r < 10 ? 2 : 0)} /s`);

/** An SVG line chart of [t, y] points. */
function chart(points, fmt) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 360;
  const H = 90;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  const pts = points.filter(([, y]) => y !== null && Number.isFinite(y));
  if (pts.length < 2) {
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', 8); t.setAttribute('y', H / 2);
    t.textContent = 'collecting…';
    svg.append(t);
    return svg;
  }
  const t0 = pts[0][0];
  const t1 = pts[pts.length - 1][0];
  const max = Math.max(...pts.map(([, y]) => y)) || 1;
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (W - 4) + 2;
  const y = (v) => H - 14 - (v / max) * (H - 24);
  const line = document.createElementNS(NS, 'polyline');
  line.setAttribute('points', pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
  const label = document.createElementNS(NS, 'text');
  label.setAttribute('x', 4); label.setAttribute('y', 10);
  label.textContent = `max ${fmt(max)}`;
  const span = document.createElementNS(NS, 'text');
  span.setAttribute('x', 4); span.setAttribute('y', H - 2);
  span.textContent = `last ${Math.round((t1 - t0) / 1000)} s`;
  svg.append(line, label, span);
  return svg;
}

/** Per-interval series between consecutive scrapes. */
function series(f) {
  const out = [];
  for (let i = 1; i < samples.length; i++) out.push([samples[i].t, f(samples[i], samples[i - 1])]);
  return out;
}

function card(id, title, value, sub, svg) {
  return h('div', {class: 'card metric', id},
    h('h3', {}, title), h('div', {class: 'big'}, value), h('div', {class: 'muted'}, sub), svg);
}

function draw(body, msg) {
  say(msg, lastError ? `Cannot read /metrics: ${lastError}` : '');
  const last = samples[samples.length - 1];
  if (!last) return;
  const since = Date.now() - RECENT_MS;
  const base = baseline(since);
  const minuteBase = baseline(Date.now() - 60000);
  const p99 = (field) => {
    if (base === last || !last[field]) return null;
    const d = delta(last[field], base[field]);
    return d.count ? quantile(0.99, d) : 'idle';
  };
  const p99all = (field) => quantile(0.99, last[field]);
  const mins = Math.max(1, Math.round((last.t - base.t) / 60000));
  const spanText = base === last ? 'waiting for a second scrape' : `last ${mins === 1 && last.t - base.t < 60000 ? `${Math.round((last.t - base.t) / 1000)} s` : `${mins} min`}`;
  const latencySub = last.latency ? `${spanText}; since start ${ms(p99all('latency'))}`
    : 'start oxcd with --metrics=extensive for request latency';

  fill(body,
    card('perf-grpc', 'gRPC requests', perSec(rate('grpc', minuteBase, last)),
      `last minute; ${last.grpc ?? 0} handled since start`, chart(series((b, a) => rate('grpc', a, b)), perSec)),
    card('perf-kv', 'KV operations', perSec(rate('kv', minuteBase, last)),
      `put+range+txn+delete, last minute; ${last.kv ?? 0} since start`, chart(series((b, a) => rate('kv', a, b)), perSec)),
    card('perf-latency', 'p99 request latency', ms(p99('latency')), latencySub,
      chart(series((b, a) => quantile(0.99, delta(b.latency, a.latency))), ms)),
    card('perf-fsync', 'p99 WAL fsync', ms(p99('fsync')),
      `${spanText}; since start ${ms(p99all('fsync'))} over ${last.fsync ? last.fsync.count : 0} fsyncs`,
      chart(series((b, a) => quantile(0.99, delta(b.fsync, a.fsync))), ms)),
    card('perf-commit', 'p99 backend commit', ms(p99('commit')),
      `${spanText}; since start ${ms(p99all('commit'))} over ${last.commit ? last.commit.count : 0} commits`,
      chart(series((b, a) => quantile(0.99, delta(b.commit, a.commit))), ms)),
    card('perf-proposals', 'Raft proposals committed', perSec(rate('proposals', minuteBase, last)),
      `last minute; ${last.proposals ?? 0} since start`, chart(series((b, a) => rate('proposals', a, b)), perSec)));
}

export async function render(main) {
  const body = h('div', {class: 'metrics', id: 'perf'});
  const msg = h('p', {id: 'perf-msg', role: 'alert', hidden: true});
  fill(main, h('h1', {}, 'Performance'),
    h('p', {class: 'muted'}, `Scraped from /metrics every ${EVERY_MS / 1000} s while the dashboard is open.`),
    msg, body);
  const redraw = () => draw(body, msg);
  listeners.add(redraw);
  ensureSampler();
  if (!samples.length) await scrape();
  else redraw();
  return () => listeners.delete(redraw);
}
