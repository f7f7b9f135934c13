// The Prometheus text exposition format (what /metrics serves), parsed, and the few
// aggregations the performance page needs: sums of counters and histogram quantiles
// computed as Prometheus' histogram_quantile does (linear within a bucket).

/** [{name, labels: {k: v}, value}] of every sample line. */
export function parse(textBody) {
  const out = [];
  for (const raw of textBody.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    out.push({name: m[1], labels, value});
  }
  return out;
}

const all = () => true;

/** Sum of the samples named `name` whose labels pass `filter`; null if there are none. */
export function sum(samples, name, filter = all) {
  let s = null;
  for (const x of samples) if (x.name === name && filter(x.labels)) s = (s ?? 0) + x.value;
  return s;
}

/** A histogram summed over series: {buckets: [[le, cumulative count]], count, sum} or null. */
export function histogram(samples, name, filter = all) {
  const byLe = new Map();
  for (const x of samples) {
    if (x.name !== `${name}_bucket` || !filter(x.labels)) continue;
    const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
    byLe.set(le, (byLe.get(le) || 0) + x.value);
  }
  if (!byLe.size) return null;
  return {
    buckets: [...byLe.entries()].sort((a, b) => a[0] - b[0]),
    count: sum(samples, `${name}_count`, filter) || 0,
    sum: sum(samples, `${name}_sum`, filter) || 0,
  };
}

/** newer − older, bucket by bucket (what happened between two scrapes). */
export function delta(newer, older) {
  if (!newer) return null;
  if (!older) return newer;
  const old = new Map(older.buckets);
  return {
    buckets: newer.buckets.map(([le, c]) => [le, Math.max(0, c - (old.get(le) || 0))]),
    count: Math.max(0, newer.count - older.count),
    sum: Math.max(0, newer.sum - older.sum),
  };
}

/** The q-quantile (0..1) of a histogram, in its unit; null without observations. */
export function quantile(q, hist) {
  if (!hist || !hist.buckets.length) return null;
  const total = hist.buckets[hist.buckets.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of hist.buckets) {
    if (c >= rank) {
      // Above the last finite bound Prometheus answers that bound.
      if (le === Infinity) return prevLe;
      if (c === prevCount) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / (c - prevCount));
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}
