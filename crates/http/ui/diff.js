// A line diff (longest common subsequence), for a key's history. Bounded: above MAX cells
// of the LCS table it falls back to "all old lines removed, all new lines added".

const MAX = 4_000_000;

/** [{op: ' ' | '-' | '+', line}] turning `a` into `b`. */
export function lineDiff(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  // Common head and tail first: most edits touch few lines.
  let s = 0;
  while (s < x.length && s < y.length && x[s] === y[s]) s++;
  let e = 0;
  while (e < x.length - s && e < y.length - s && x[x.length - 1 - e] === y[y.length - 1 - e]) e++;
  const head = x.slice(0, s).map((line) => ({op: ' ', line}));
  const tail = x.slice(x.length - e).map((line) => ({op: ' ', line}));
  const xs = x.slice(s, x.length - e);
  const ys = y.slice(s, y.length - e);
  if (xs.length * ys.length > MAX) {
    return [...head, ...xs.map((line) => ({op: '-', line})), ...ys.map((line) => ({op: '+', line})), ...tail];
  }
  const n = xs.length;
  const m = ys.length;
  const w = m + 1;
  const t = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      t[i * w + j] = xs[i] === ys[j] ? t[(i + 1) * w + j + 1] + 1
        : Math.max(t[(i + 1) * w + j], t[i * w + j + 1]);
    }
  }
  const mid = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (xs[i] === ys[j]) { mid.push({op: ' ', line: xs[i]}); i++; j++; }
    else if (t[(i + 1) * w + j] >= t[i * w + j + 1]) mid.push({op: '-', line: xs[i++]});
    else mid.push({op: '+', line: ys[j++]});
  }
  while (i < n) mid.push({op: '-', line: xs[i++]});
  while (j < m) mid.push({op: '+', line: ys[j++]});
  return [...head, ...mid, ...tail];
}
