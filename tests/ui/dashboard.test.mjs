// The dashboard without auth, against a real oxcd: cluster, keys (browse, edit, conflict,
// bad input, history), watch, leases, performance. Screenshots: target/ui-screenshots/.

import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';
import {b64, browserMissing, hexId, ok, openBrowser, startOxcd, unb64, waitText} from './harness.mjs';

const skip = browserMissing() || false;

describe('dashboard (no auth)', {skip}, () => {
  let srv;
  let b;
  let page;
  let leaseId;
  const get = async (k) => ((await ok(srv.url, 'kv/range', {key: b64(k)})).kvs || [])[0];
  const put = (k, v, extra = {}) => ok(srv.url, 'kv/put', {key: b64(k), value: b64(v), ...extra});

  before(async () => {
    srv = await startOxcd(['--metrics=extensive'], {metrics: true});
    await put('/app/a/x', 'hello');
    await put('/app/b/y', '{"n": 1}');
    leaseId = (await ok(srv.url, 'lease/grant', {TTL: '300'})).ID;
    await put('/app/lease/k', 'leased', {lease: leaseId});
    // Not UTF-8: shown read-only, never re-saved with replacement characters.
    await ok(srv.url, 'kv/put', {key: b64('/app/bin'), value: Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('base64')});
    b = await openBrowser();
    page = b.page;
  });

  after(async () => {
    if (b) await b.close();
    if (srv) await srv.stop();
  });

  test('cluster page: one member, the leader, health and version', async () => {
    await page.goto(`${srv.url}/ui`);
    assert.ok(page.url().endsWith('/ui/'), `redirected to ${page.url()}`);
    await page.locator('#members tbody tr').first().waitFor();
    assert.equal(await page.locator('#members tbody tr').count(), 1);
    const members = (await ok(srv.url, 'cluster/member/list')).members;
    const id = hexId(members[0].ID);
    assert.equal(await page.locator('#leader').innerText(), id);
    assert.match(await page.locator(`#members tr[data-member="${id}"]`).innerText(), /leader/);
    assert.equal(await page.locator('#health').innerText(), 'healthy');
    assert.match(await page.locator('#version').innerText(), /^3\.\d+\.\d+/);
    const st = await ok(srv.url, 'maintenance/status');
    assert.equal(await page.locator('#raft-term').innerText(), st.raftTerm);
    assert.ok(Number(await page.locator('#raft-index').innerText()) > 0);
    assert.match(await page.locator('#db-size').innerText(), /^[1-9][\d.]* (KiB|MiB)$/);
    assert.match(await page.locator('#db-in-use').innerText(), /^[1-9]/);
    assert.match(await page.locator('#alarms').innerText(), /No alarms/);
    await b.shot('cluster');
  });

  test('keys page: browse /app/, open a key, edit it, see its history', async () => {
    await page.goto(`${srv.url}/ui/#/keys?prefix=/app/`);
    const dirA = page.locator('button.dir[data-prefix="/app/a/"]');
    await dirA.waitFor();
    await page.locator('button.dir[data-prefix="/app/b/"]').waitFor();
    await dirA.click();
    await page.locator('a.leaf[data-key="/app/a/x"]').click();
    await waitText(page.locator('#key-name'), /^\/app\/a\/x$/);
    assert.equal(await page.locator('#value').inputValue(), 'hello');
    const kv = await get('/app/a/x');
    assert.equal(await page.locator('#mod-rev').innerText(), kv.mod_revision);
    assert.equal(await page.locator('#version').innerText(), '1');

    await page.locator('#value').fill('hello\nedited in the page');
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Saved at revision \d+/);
    assert.equal(unb64((await get('/app/a/x')).value), 'hello\nedited in the page');
    assert.equal(await page.locator('#version').innerText(), '2');
    await b.shot('keys');

    await page.locator('#show-history').click();
    await waitText(page.locator('#history h3'), /History \(2 versions\)/);
    const diff = page.locator('#history details').first();
    assert.equal(await diff.locator('.add').innerText(), '+ edited in the page');
    assert.equal(await diff.locator('.same').innerText(), '  hello');
    await b.shot('keys-history');
  });

  test('keys page: a concurrent change is not overwritten', async () => {
    // The page shows the value at its mod revision; someone else writes meanwhile.
    await put('/app/a/x', 'changed elsewhere');
    await page.locator('#value').fill('stale edit from the page');
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Conflict: the key changed since you opened it/);
    assert.equal(unb64((await get('/app/a/x')).value), 'changed elsewhere');
    await b.shot('keys-conflict');
    // Reloading shows the other writer's value, and a save then succeeds.
    await page.locator('#reload').click();
    await waitText(page.locator('#value'), /^changed elsewhere$/, {value: true});
  });

  test('keys page: invalid JSON and a 2 MiB value get messages, the page keeps working', async () => {
    const before = await get('/app/a/x');
    await page.locator('select.format').selectOption('json');
    await page.locator('#value').fill('{"not": json');
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Invalid JSON, not saved/);
    assert.equal((await get('/app/a/x')).mod_revision, before.mod_revision, 'nothing was sent');

    await page.locator('select.format').selectOption('text');
    await page.locator('#value').evaluate((el) => { el.value = 'x'.repeat(2 * 1024 * 1024); });
    await page.locator('#save').click();
    const m = await waitText(page.locator('#key-msg'), /Not saved: .*too large/);
    assert.doesNotMatch(m, /Saving/);
    assert.equal((await get('/app/a/x')).mod_revision, before.mod_revision, 'nothing was written');
    await b.shot('keys-errors');
    // Just above --max-request-bytes (1.5 MiB) the gateway passes it on and etcd refuses it.
    await page.locator('#value').evaluate((el) => { el.value = 'y'.repeat(1.5 * 1024 * 1024 + 100); });
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Not saved: etcdserver: request is too large/);
    assert.equal((await get('/app/a/x')).mod_revision, before.mod_revision, 'nothing was written');

    // Still a working page: valid JSON saves.
    await page.locator('select.format').selectOption('json');
    await page.locator('#value').fill('{"ok": true}');
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Saved at revision/);
    assert.equal(unb64((await get('/app/a/x')).value), '{"ok": true}');
  });

  test('keys page: create and delete', async () => {
    await page.locator('#new-key').click();
    await page.locator('#new-name').fill('/app/c/new');
    await page.locator('#new-value').fill('created');
    await page.locator('#create').click();
    await waitText(page.locator('#key-msg'), /Created at revision/);
    assert.equal(unb64((await get('/app/c/new')).value), 'created');
    await page.locator('#delete').click();
    await page.locator('#delete').click();  // second click confirms
    await waitText(page.locator('#detail'), /Deleted at revision/);
    assert.equal(await get('/app/c/new'), undefined);
  });

  test('keys page: the tree is paged', async () => {
    for (let i = 0; i < 210; i++) await put(`/many/k${String(i).padStart(3, '0')}`, 'v');
    await page.goto(`${srv.url}/ui/#/keys?prefix=/many/`);
    await page.locator('#more').waitFor();
    assert.equal(await page.locator('#tree a.leaf').count(), 200);
    await page.locator('#more').click();
    await page.locator('a.leaf[data-key="/many/k209"]').waitFor();
    assert.equal(await page.locator('#tree a.leaf').count(), 210);
    assert.equal(await page.locator('#more').count(), 0);
  });

  test('keys page: a binary value is read-only', async () => {
    await page.goto(`${srv.url}/ui/#/keys?prefix=/app/&key=/app/bin`);
    await waitText(page.locator('#key-msg'), /not UTF-8 text/);
    assert.equal(await page.locator('#save').isDisabled(), true);
    assert.equal(await page.locator('#value').getAttribute('readonly'), '');
  });

  test('watch page: an event written through the gateway arrives', async () => {
    await page.goto(`${srv.url}/ui/#/watch?prefix=/app/`);
    await waitText(page.locator('#watch-status'), /Watching "\/app\/"/);
    await put('/app/watched', 'w1');
    await put('/elsewhere', 'not under the prefix');
    await ok(srv.url, 'kv/deleterange', {key: b64('/app/watched')});
    const rows = page.locator('#events tr');
    await waitText(rows.first(), /DELETE\s+\/app\/watched/);
    assert.equal(await rows.count(), 2);
    assert.match(await rows.nth(1).innerText(), /PUT\s+\/app\/watched\s+w1/);
    await b.shot('watch');
  });

  test('leases page: TTL counts down, the attached key is listed', async () => {
    await page.goto(`${srv.url}/ui/#/leases`);
    const row = page.locator(`tr[data-lease="${hexId(leaseId)}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /\/app\/lease\/k/);
    assert.match(await row.innerText(), /300 s/);  // granted TTL
    const ttl = async () => Number((await row.locator('td.ttl').innerText()).replace(' s', ''));
    const first = await ttl();
    assert.ok(first > 280 && first <= 300, `ttl ${first}`);
    await new Promise((r) => setTimeout(r, 2200));
    assert.ok((await ttl()) < first, 'the TTL counts down');
    await b.shot('leases');
  });

  test('performance page: numbers from /metrics', async () => {
    await page.goto(`${srv.url}/ui/#/performance`);
    await page.locator('#perf-fsync').waitFor();
    for (let i = 0; i < 20; i++) await put(`/perf/${i}`, 'v');
    // After a second scrape the recent p99s and rates are numbers.
    await waitText(page.locator('#perf-fsync .big'), /^\d+(\.\d+)? ms$/);
    await waitText(page.locator('#perf-commit .big'), /^\d+(\.\d+)? ms$/);
    await waitText(page.locator('#perf-kv .big'), /^\d+(\.\d+)? \/s$/);
    await waitText(page.locator('#perf-grpc .big'), /^\d+(\.\d+)? \/s$/);
    assert.match(await page.locator('#perf-latency').innerText(), /since start \d+(\.\d+)? ms/);
    assert.match(await page.locator('#perf-fsync').innerText(), /over [1-9]\d* fsyncs/);
    await page.locator('#perf-kv svg polyline').waitFor({timeout: 10000});
    await b.shot('performance');
  });

  test('metrics listener: the performance page works, the others say where the gateway is', async () => {
    await page.goto(`${srv.metricsUrl}/ui/`);
    await waitText(page.locator('#banner'), /JSON gateway is not served on this listener/);
    // No writes meanwhile: the recent p99 may be empty, the totals since start are not.
    await waitText(page.locator('#perf-fsync'), /since start \d+(\.\d+)? ms over [1-9]\d* fsyncs/);
    await waitText(page.locator('#perf-kv .big'), /^\d+(\.\d+)? \/s$/);
    await b.shot('metrics-listener');
  });

  test('no script errors and no CSP violations on any page', () => {
    assert.deepEqual(b.problems, []);
  });
});
