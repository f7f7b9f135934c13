// The dashboard's pure modules, without a browser: the Prometheus parser and quantiles
// (checked against values histogram_quantile gives), and the line diff.

import assert from 'node:assert/strict';
import {test} from 'node:test';
import {delta, histogram, parse, quantile, sum} from '../../crates/http/ui/prom.js';
import {lineDiff} from '../../crates/http/ui/diff.js';

const TEXT = `# HELP h a histogram
# TYPE h histogram
h_bucket{op="a",le="0.001"} 0
h_bucket{op="a",le="0.01"} 90
h_bucket{op="a",le="0.1"} 100
h_bucket{op="a",le="+Inf"} 100
h_sum{op="a"} 1.5
h_count{op="a"} 100
h_bucket{op="b",le="0.001"} 100
h_bucket{op="b",le="0.01"} 100
h_bucket{op="b",le="0.1"} 100
h_bucket{op="b",le="+Inf"} 100
h_sum{op="b"} 0.05
h_count{op="b"} 100
c_total{code="OK",msg="a \\"quoted\\" {x}"} 7
c_total{code="NotFound"} 3
g 1.5e3
`;

test('parse: labels with escapes, exponents, comments skipped', () => {
  const s = parse(TEXT);
  assert.equal(s.length, 15);
  assert.equal(sum(s, 'c_total'), 10);
  assert.equal(sum(s, 'c_total', (l) => l.code === 'OK'), 7);
  assert.equal(s.find((x) => x.name === 'c_total').labels.msg, 'a "quoted" {x}');
  assert.equal(sum(s, 'g'), 1500);
  assert.equal(sum(s, 'missing'), null);
});

test('quantile: as Prometheus histogram_quantile, per series and summed', () => {
  const s = parse(TEXT);
  const a = histogram(s, 'h', (l) => l.op === 'a');
  assert.equal(a.count, 100);
  // rank 99 falls in (0.01, 0.1] holding 90..100: 0.01 + 0.09 * 9/10.
  assert.ok(Math.abs(quantile(0.99, a) - 0.091) < 1e-9);
  assert.ok(Math.abs(quantile(0.5, a) - (0.001 + 0.009 * (50 / 90))) < 1e-9);
  const both = histogram(s, 'h');
  assert.equal(both.count, 200);
  // rank 198 of 200: bucket (0.01, 0.1] holds 190..200.
  assert.ok(Math.abs(quantile(0.99, both) - (0.01 + 0.09 * (8 / 10))) < 1e-9);
  assert.equal(quantile(0.99, null), null);
});

test('delta: what happened between two scrapes', () => {
  const before = histogram(parse('h_bucket{le="1"} 5\nh_bucket{le="+Inf"} 5\nh_count 5\nh_sum 1\n'), 'h');
  const after = histogram(parse('h_bucket{le="1"} 5\nh_bucket{le="+Inf"} 7\nh_count 7\nh_sum 9\n'), 'h');
  const d = delta(after, before);
  assert.deepEqual(d.buckets, [[1, 0], [Infinity, 2]]);
  assert.equal(d.count, 2);
  // Everything above the last finite bound: that bound, as Prometheus answers.
  assert.equal(quantile(0.99, d), 1);
  assert.equal(quantile(0.99, delta(before, before)), null);
});

test('lineDiff: minimal edits, common head and tail kept', () => {
  const ops = (a, b) => lineDiff(a, b).map((d) => `${d.op}${d.line}`);
  assert.deepEqual(ops('a\nb\nc', 'a\nx\nc'), [' a', '-b', '+x', ' c']);
  assert.deepEqual(ops('a', 'a\nb'), [' a', '+b']);
  assert.deepEqual(ops('x\na\nb', 'a\nb'), ['-x', ' a', ' b']);
  assert.deepEqual(ops('same', 'same'), [' same']);
  // Reordering keeps the longest common subsequence.
  const d = lineDiff('1\n2\n3\n4', '1\n3\n2\n4');
  assert.equal(d.filter((x) => x.op === ' ').length, 3);
  // Huge inputs fall back to remove-all/add-all instead of a huge table.
  const big = Array.from({length: 3000}, (_, i) => `l${i}`).join('\n');
  const other = Array.from({length: 3000}, (_, i) => `m${i}`).join('\n');
  const f = lineDiff(big, other);
  assert.equal(f.length, 6000);
});
