// The dashboard with auth on: the login form, a wrong and a right password, and a
// read-only user whose edit is refused with the server's permission-denied message.

import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';
import {b64, browserMissing, gateway, ok, openBrowser, prefixEnd, startOxcd, unb64, waitText} from './harness.mjs';

const skip = browserMissing() || false;

describe('dashboard (auth on)', {skip}, () => {
  let srv;
  let b;
  let page;
  let rootToken;

  before(async () => {
    srv = await startOxcd();
    const u = srv.url;
    await ok(u, 'kv/put', {key: b64('/app/a/x'), value: b64('before auth')});
    await ok(u, 'auth/user/add', {name: 'root', password: 'rootpw'});
    await ok(u, 'auth/role/add', {name: 'root'});
    await ok(u, 'auth/user/grant', {user: 'root', role: 'root'});
    await ok(u, 'auth/user/add', {name: 'reader', password: 'readpw'});
    await ok(u, 'auth/role/add', {name: 'ro'});
    await ok(u, 'auth/role/grant', {
      name: 'ro', perm: {permType: 'READ', key: b64('/app/'), range_end: prefixEnd('/app/')},
    });
    await ok(u, 'auth/user/grant', {user: 'reader', role: 'ro'});
    await ok(u, 'auth/enable');
    rootToken = (await ok(u, 'auth/authenticate', {name: 'root', password: 'rootpw'})).token;
    b = await openBrowser();
    page = b.page;
  });

  after(async () => {
    if (b) await b.close();
    if (srv) await srv.stop();
  });

  const login = async (user, password) => {
    await page.locator('#login-form input[name=user]').fill(user);
    await page.locator('#login-form input[name=password]').fill(password);
    await page.locator('#login-form button[type=submit]').click();
  };

  test('the gateway refuses anonymous reads (the premise)', async () => {
    const r = await gateway(srv.url, 'kv/range', {key: b64('/app/a/x')});
    assert.notEqual(r.status, 200);
  });

  test('a login form; a wrong password is an error message', async () => {
    await page.goto(`${srv.url}/ui/`);
    await page.locator('#login-form').waitFor();
    assert.equal(await page.locator('#main').isVisible(), false);
    await login('root', 'wrong');
    await waitText(page.locator('#login-error'), /Login failed: .*authentication failed/);
    assert.equal(await page.locator('#login-form').isVisible(), true);
    await b.shot('login-error');
  });

  test('the right password opens the pages, with the user\'s token', async () => {
    await login('root', 'rootpw');
    await page.locator('#members tbody tr').first().waitFor();
    assert.equal(await page.locator('#who').innerText(), 'user: root');
    await page.goto(`${srv.url}/ui/#/keys?prefix=/app/&key=/app/a/x`);
    await waitText(page.locator('#value'), /^before auth$/, {value: true});
    await page.locator('#value').fill('root was here');
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Saved at revision/);
    const kv = (await ok(srv.url, 'kv/range', {key: b64('/app/a/x')}, rootToken)).kvs[0];
    assert.equal(unb64(kv.value), 'root was here');
    await b.shot('auth-root-keys');
  });

  test('a read-only user sees values but cannot edit them', async () => {
    await page.locator('#logout').click();
    await page.locator('#login-form').waitFor();
    await login('reader', 'readpw');
    await waitText(page.locator('#who'), /user: reader/);
    await page.goto(`${srv.url}/ui/#/keys?prefix=/app/&key=/app/a/x`);
    await waitText(page.locator('#value'), /^root was here$/, {value: true});
    await page.locator('#value').fill('reader edit');
    await page.locator('#save').click();
    await waitText(page.locator('#key-msg'), /Not saved: .*permission denied/);
    await b.shot('auth-readonly-edit');
    const kv = (await ok(srv.url, 'kv/range', {key: b64('/app/a/x')}, rootToken)).kvs[0];
    assert.equal(unb64(kv.value), 'root was here');
    // Outside its prefix the reader cannot even list.
    await page.goto(`${srv.url}/ui/#/keys?prefix=/other/`);
    await waitText(page.locator('#tree'), /Cannot list \/other\/: .*permission denied/);
    await b.shot('auth-readonly');
  });

  test('the read-only user watches its prefix with its own token', async () => {
    await page.goto(`${srv.url}/ui/#/watch?prefix=/app/`);
    await waitText(page.locator('#watch-status'), /Watching "\/app\/"/);
    await ok(srv.url, 'kv/put', {key: b64('/app/w'), value: b64('by root')}, rootToken);
    await waitText(page.locator('#events tr').first(), /PUT\s+\/app\/w\s+by root/);
    await b.shot('auth-watch');
  });

  test('a token the server does not know brings back the login form', async () => {
    await page.evaluate(() => sessionStorage.setItem('oxcd.token', 'not-a-token'));
    await page.reload();
    await waitText(page.locator('#login-error'), /Please log in again: .*invalid auth token/);
    assert.equal(await page.locator('#main').isVisible(), false);
    await login('reader', 'readpw');
    await waitText(page.locator('#who'), /user: reader/);
  });

  test('no script errors and no CSP violations', () => {
    assert.deepEqual(b.problems, []);
  });
});
