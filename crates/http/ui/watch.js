// Watch page: live events under a prefix, from one streamed /v3/watch call that lasts
// while the page is open (leaving the page aborts the fetch, which ends the watch).

import {call, prefixRange, stream, text} from './api.js';
import {fill, h, say} from './dom.js';

const KEEP = 500;  // events kept on the page

export async function render(main, params) {
  const input = h('input', {id: 'watch-prefix', value: params.get('prefix') ?? '/', size: 30});
  const button = h('button', {type: 'submit', id: 'watch-start'}, 'Watch');
  const status = h('p', {id: 'watch-status', role: 'status', hidden: true});
  const rows = h('tbody', {id: 'events'});
  let abort = null;

  const stop = () => {
    if (abort) abort.abort();
    abort = null;
    button.textContent = 'Watch';
  };
  const start = async (ev) => {
    if (ev) ev.preventDefault();
    if (abort) return stop() || say(status, 'Stopped.', 'info');
    const prefix = input.value;
    history.replaceState(null, '', `#/watch?${new URLSearchParams({prefix})}`);
    const ctl = new AbortController();
    abort = ctl;
    button.textContent = 'Stop';
    say(status, `Connecting…`, 'info');
    try {
      // Start at the current revision + 1, so nothing between the page load and the
      // watch's creation is missed or replayed.
      const rev = BigInt((await call('kv/range', {...prefixRange(prefix), count_only: true})).header.revision);
      const req = {create_request: {...prefixRange(prefix), start_revision: String(rev + 1n), prev_kv: true}};
      for await (const res of stream('watch', req, ctl.signal)) {
        if (res.created) say(status, `Watching "${prefix}" from revision ${rev + 1n}…`, 'ok');
        if (res.canceled) {
          say(status, `The server ended the watch: ${res.cancel_reason || 'canceled'}`);
          break;
        }
        for (const e of res.events || []) addEvent(rows, e);
      }
      if (abort === ctl) say(status, 'The watch stream ended.', 'info');
    } catch (e) {
      if (abort === ctl) say(status, `Watch failed: ${e.message}`);
    } finally {
      if (abort === ctl) stop();
    }
  };

  fill(main,
    h('h1', {}, 'Watch'),
    h('form', {class: 'toolbar', onsubmit: start},
      h('label', {}, 'Prefix ', input), button,
      h('button', {type: 'button', onclick: () => rows.replaceChildren()}, 'Clear')),
    status,
    h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, ['Time', 'Type', 'Key', 'Value', 'Mod revision', 'Previous value']
        .map((x) => h('th', {}, x)))),
      rows));
  start();
  return stop;
}

function addEvent(rows, e) {
  const kv = e.kv || {};
  const type = e.type || 'PUT';  // the enum's default (PUT) is omitted in JSON
  const short = (s) => (s.length > 200 ? `${s.slice(0, 200)}…` : s);
  rows.prepend(h('tr', {class: `event ${type.toLowerCase()}`},
    h('td', {}, new Date().toLocaleTimeString()),
    h('td', {}, type),
    h('td', {class: 'mono'}, text(kv.key)),
    h('td', {class: 'mono'}, type === 'PUT' ? short(text(kv.value)) : ''),
    h('td', {}, kv.mod_revision || ''),
    h('td', {class: 'mono'}, e.prev_kv ? short(text(e.prev_kv.value)) : '')));
  while (rows.children.length > KEEP) rows.lastChild.remove();
}
