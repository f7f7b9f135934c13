// The shell: hash routing between pages, the login form when auth is on, and the banner
// that shows a page's failure instead of a broken page.
//
// A page module exports `render(main, params)`; it may return a function that stops what
// it started (a watch, a timer) when the user leaves the page.

import {call, session, setSession, setAuthLostHandler} from './api.js';
import {fill, h, say} from './dom.js';
import * as cluster from './cluster.js';
import * as keys from './keys.js';
import * as watch from './watch.js';
import * as leases from './leases.js';
import * as performance from './perf.js';

const pages = {cluster, keys, watch, leases, performance};

const $ = (id) => document.getElementById(id);
let stopPage = null;
let authEnabled = false;
// A metrics listener serves /metrics but no gateway: only the performance page works there.
let noGateway = false;

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [name, query] = hash.split('?');
  const fallback = noGateway ? 'performance' : 'cluster';
  return {name: pages[name] ? name : fallback, params: new URLSearchParams(query || '')};
}

async function show() {
  if (stopPage) { try { stopPage(); } catch { /* already stopped */ } stopPage = null; }
  if (authEnabled && !session().token) return showLogin();
  $('login').hidden = true;
  const main = $('main');
  main.hidden = false;
  const {name, params} = route();
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === name);
  }
  document.title = `oxcd · ${name}`;
  fill(main);
  main.dataset.page = name;
  try {
    stopPage = (await pages[name].render(main, params)) || null;
  } catch (e) {
    fill(main, h('h1', {}, name), h('p', {class: 'msg error', role: 'alert'}, e.message));
  }
}

function showLogin(message) {
  if (stopPage) { try { stopPage(); } catch { /* already stopped */ } stopPage = null; }
  $('main').hidden = true;
  $('login').hidden = false;
  say($('login-error'), message || '');
  updateWho();
  $('login-form').elements.user.focus();
}

function updateWho() {
  const {user} = session();
  $('who').textContent = user ? `user: ${user}` : '';
  $('logout').hidden = !user;
}

async function login(ev) {
  ev.preventDefault();
  const f = ev.target.elements;
  const button = ev.target.querySelector('button');
  button.disabled = true;
  say($('login-error'), '');
  try {
    const r = await call('auth/authenticate', {name: f.user.value, password: f.password.value}, {noAuthHandler: true});
    setSession(r.token, f.user.value);
    f.password.value = '';
    updateWho();
    await show();
  } catch (e) {
    say($('login-error'), `Login failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => { setSession(null); showLogin('Logged out.'); });
  setAuthLostHandler((e) => {
    setSession(null);
    authEnabled = true;
    showLogin(`Please log in: ${e.message}`);
  });
  window.addEventListener('hashchange', show);
  const hadToken = !!session().token;
  try {
    authEnabled = !!(await call('auth/status', {}, {noAuthHandler: true})).enabled;
  } catch (e) {
    if (e.authLost) {
      // With auth on, AuthStatus itself needs a (valid) token.
      authEnabled = true;
      setSession(null);
      if (hadToken) return showLogin(`Please log in again: ${e.message}`);
    } else {
      noGateway = e.status === 404;
      say($('banner'), noGateway
        ? `${e.message} This listener serves the performance page only.` : e.message);
    }
  }
  updateWho();
  await show();
}

start();
