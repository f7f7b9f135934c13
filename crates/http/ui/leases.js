// Leases page: every lease with its TTL counting down (from the last TimeToLive, ticked
// locally each second and refreshed from the server) and the keys attached to it.

import {call, text} from './api.js';
import {fill, h, hexId, say} from './dom.js';

const REFRESH_MS = 10000;
const MAX_LEASES = 200;  // TimeToLive calls per refresh

export async function render(main) {
  const rows = h('tbody', {id: 'lease-rows'});
  const msg = h('p', {id: 'lease-msg', role: 'status', hidden: true});
  const summary = h('span', {class: 'muted'});
  fill(main,
    h('h1', {}, 'Leases ', summary),
    msg,
    h('table', {class: 'grid', id: 'leases'},
      h('thead', {}, h('tr', {}, ['ID', 'TTL left', 'Granted TTL', 'Attached keys'].map((x) => h('th', {}, x)))),
      rows));

  let leases = [];
  let fetched = 0;
  let stopped = false;
  let refreshTimer = null;
  const tick = () => {
    const gone = Math.floor((Date.now() - fetched) / 1000);
    for (const l of leases) {
      const left = Math.max(0, Number(l.TTL || 0) - gone);
      l.cell.textContent = left > 0 ? `${left} s` : 'expired';
    }
  };
  const refresh = async () => {
    try {
      const ids = ((await call('lease/leases', {})).leases || []).map((l) => l.ID);
      const shown = ids.slice(0, MAX_LEASES);
      const ttls = await Promise.all(shown.map((ID) =>
        call('lease/timetolive', {ID, keys: true}).catch((e) => ({ID, error: e.message}))));
      fetched = Date.now();
      leases = ttls.map((t) => ({...t, cell: h('td', {class: 'ttl'})}));
      fill(rows, leases.map((l) => h('tr', {'data-lease': hexId(l.ID)},
        h('td', {class: 'mono'}, hexId(l.ID)),
        l.error ? h('td', {class: 'msg error', colspan: 3}, l.error) : [
          l.cell,
          h('td', {}, `${l.grantedTTL || 0} s`),
          h('td', {class: 'mono'}, (l.keys || []).length
            ? (l.keys || []).map((k) => h('div', {}, text(k))) : h('span', {class: 'muted'}, 'none')),
        ])));
      if (!leases.length) rows.append(h('tr', {}, h('td', {colspan: 4, class: 'muted'}, 'No leases.')));
      summary.textContent = ids.length > shown.length ? `(${shown.length} of ${ids.length} shown)` : `(${ids.length})`;
      say(msg, '');
      tick();
    } catch (e) {
      say(msg, `Cannot list leases: ${e.message}`);
    }
    if (!stopped) refreshTimer = setTimeout(refresh, REFRESH_MS);
  };
  const ticker = setInterval(tick, 1000);
  await refresh();
  return () => { stopped = true; clearInterval(ticker); clearTimeout(refreshTimer); };
}
