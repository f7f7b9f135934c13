// Where the dashboard is served: /ui/ on the client and metrics listeners by default, and
// nowhere with --enable-ui=false (404, while the gateway still answers). No browser needed.

import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';
import {b64, gateway, startOxcd} from './harness.mjs';

describe('--enable-ui=false', () => {
  let srv;
  before(async () => { srv = await startOxcd(['--enable-ui=false']); });
  after(async () => { if (srv) await srv.stop(); });

  test('/ui/ and its files are 404; the gateway still works', async () => {
    for (const p of ['/ui', '/ui/', '/ui/app.js']) {
      const r = await fetch(`${srv.url}${p}`, {redirect: 'manual'});
      assert.equal(r.status, 404, p);
    }
    assert.equal((await gateway(srv.url, 'kv/range', {key: b64('a')})).status, 200);
  });
});

describe('default (--enable-ui=true)', () => {
  let srv;
  before(async () => { srv = await startOxcd([], {metrics: true}); });
  after(async () => { if (srv) await srv.stop(); });

  test('served on the client and the metrics listener, with a strict CSP', async () => {
    for (const base of [srv.url, srv.metricsUrl]) {
      const r = await fetch(`${base}/ui/`);
      assert.equal(r.status, 200, base);
      assert.match(r.headers.get('content-type'), /^text\/html/);
      assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
      assert.match(await r.text(), /<script type="module" src="app.js">/);
      const js = await fetch(`${base}/ui/app.js`);
      assert.match(js.headers.get('content-type'), /^text\/javascript/);
      const bare = await fetch(`${base}/ui`, {redirect: 'manual'});
      assert.equal(bare.status, 301);
      assert.equal(bare.headers.get('location'), '/ui/');
    }
  });
});
