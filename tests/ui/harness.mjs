// Shared by the dashboard tests: a real oxcd on free loopback ports with a temp data dir
// (killed by PID at the end), gateway calls, and Debian's Chromium through playwright-core.
//
// OXCD_BIN: the server binary (default target/debug/oxcd of this repo). CHROMIUM_BIN:
// the browser (default /usr/bin/chromium). Without Chromium the tests skip, except when
// CI=true, where they fail.

import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OXCD_BIN = path.resolve(ROOT, process.env.OXCD_BIN || 'target/debug/oxcd');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const SHOTS = path.join(ROOT, 'target', 'ui-screenshots');

/** Why the browser tests cannot run here (null: they can). Throws in CI. */
export function browserMissing() {
  if (fs.existsSync(CHROMIUM)) return null;
  const why = `${CHROMIUM} not found (apt-get install chromium)`;
  if (process.env.CI === 'true') throw new Error(`${why}; CI=true does not skip`);
  return why;
}

export const b64 = (s) => Buffer.from(s).toString('base64');
export const unb64 = (s) => Buffer.from(s || '', 'base64').toString();
export const hexId = (id) => BigInt(id).toString(16);

/** etcd's prefix end for a non-empty ASCII prefix, base64. */
export function prefixEnd(prefix) {
  const b = Buffer.from(prefix);
  b[b.length - 1]++;
  return b.toString('base64');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** POST a gateway call; resolves to {status, json}. */
export async function gateway(base, p, body = {}, token) {
  const headers = {'Content-Type': 'application/json'};
  if (token) headers.Authorization = token;
  const r = await fetch(`${base}/v3/${p}`, {method: 'POST', headers, body: JSON.stringify(body)});
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = {text}; }
  return {status: r.status, json};
}

/** Like gateway() but fails the test unless the answer is 200. */
export async function ok(base, p, body, token) {
  const r = await gateway(base, p, body, token);
  if (r.status !== 200) throw new Error(`${p}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

/** A started single-member oxcd. */
export async function startOxcd(extra = [], {metrics = false} = {}) {
  if (!fs.existsSync(OXCD_BIN)) {
    throw new Error(`${OXCD_BIN} not found: cargo build -p oxcd-server --bin oxcd (or set OXCD_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxcd-ui-'));
  const [cp, pp, mp] = [await freePort(), await freePort(), await freePort()];
  const url = `http://127.0.0.1:${cp}`;
  const peer = `http://127.0.0.1:${pp}`;
  const args = [
    '--name', 'n1', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `n1=${peer}`,
    ...(metrics ? ['--listen-metrics-urls', `http://127.0.0.1:${mp}`] : []),
    ...extra,
  ];
  const logPath = path.join(dir, 'server.log');
  const log = fs.openSync(logPath, 'a');
  const child = spawn(OXCD_BIN, args, {stdio: ['ignore', log, log], cwd: dir});
  fs.closeSync(log);
  let exited = null;
  child.on('exit', (code, sig) => { exited = `${code ?? sig}`; });
  const srv = {
    url,
    metricsUrl: metrics ? `http://127.0.0.1:${mp}` : null,
    pid: child.pid,
    log: () => fs.readFileSync(logPath, 'utf8').slice(-5000),
    async stop() {
      if (exited === null) {
        process.kill(child.pid, 'SIGKILL');
        await new Promise((r) => (exited !== null ? r() : child.once('exit', r)));
      }
      fs.rmSync(dir, {recursive: true, force: true});
    },
  };
  const deadline = Date.now() + 30000;
  let last = '';
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`oxcd exited (${exited}):\n${srv.log()}`);
    try {
      const r = await gateway(url, 'maintenance/status');
      if (r.status === 200 && r.json.leader && r.json.leader !== '0') return srv;
      last = JSON.stringify(r.json);
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  await srv.stop();
  throw new Error(`oxcd not ready in 30 s: ${last}`);
}

/** Headless Chromium with a fresh profile; collects page errors and CSP reports. */
export async function openBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'oxcd-ui-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: {width: 1280, height: 800},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused request (413, 403) logs "Failed to load resource": expected in some tests.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  fs.mkdirSync(SHOTS, {recursive: true});
  return {
    ctx, page, problems,
    shot: (name) => page.screenshot({path: path.join(SHOTS, `${name}.png`), fullPage: true}),
    async close() {
      await ctx.close();
      fs.rmSync(profile, {recursive: true, force: true});
    },
  };
}

/** Polls `locator`'s text (or input value) until it matches `re`; returns it. */
export async function waitText(locator, re, {value = false, timeout = 10000} = {}) {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    try {
      last = value ? await locator.inputValue({timeout: 1000}) : await locator.innerText({timeout: 1000});
      if (re.test(last)) return last;
    } catch { /* not there yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`text ${JSON.stringify(last.slice(0, 300))} never matched ${re}`);
}
