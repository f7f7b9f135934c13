// Keys page: a prefix tree of '/'-separated keys (paged ranges, keys only), one key's value
// and metadata, its history with a line diff, and edit/create/delete.
//
// Every write is a Txn guarded by a compare, so a concurrent change is never overwritten:
// edit and delete compare MOD == the mod revision shown, create compares CREATE == 0.

import {b64, call, decode, prefixRange, text} from './api.js';
import {lineDiff} from './diff.js';
import {bytes, facts, fill, h, hexId, say} from './dom.js';

const PAGE = 200;          // keys per range while browsing
const HISTORY_MAX = 30;    // versions walked back

export async function render(main, params) {
  const prefix = params.get('prefix') ?? '/';
  const input = h('input', {id: 'prefix', value: prefix, placeholder: 'prefix, e.g. /app/', size: 30});
  const tree = h('ul', {class: 'tree', id: 'tree'});
  const detail = h('div', {id: 'detail', class: 'card'}, h('p', {class: 'muted'}, 'Pick a key on the left.'));
  const browse = (ev) => {
    ev.preventDefault();
    setUrl(input.value, null);
    loadDir(tree, input.value, detail);
  };
  fill(main,
    h('h1', {}, 'Keys'),
    h('form', {class: 'toolbar', id: 'browse-form', onsubmit: browse},
      h('label', {}, 'Prefix ', input),
      h('button', {type: 'submit'}, 'Browse'),
      h('button', {type: 'button', id: 'new-key', onclick: () => newKey(detail, input.value, tree)}, 'New key')),
    h('div', {class: 'split'}, h('div', {class: 'card tree-card'}, tree), detail));
  await loadDir(tree, prefix, detail);
  const key = params.get('key');
  if (key !== null) await openKey(detail, key);
}

function setUrl(prefix, key) {
  const q = new URLSearchParams({prefix});
  if (key !== null) q.set('key', key);
  // replaceState does not fire hashchange: the tree keeps its open folders.
  history.replaceState(null, '', `#/keys?${q}`);
}

/** One page of the keys under `prefix`, from `after` on: child folders and keys. */
async function listPage(prefix, after) {
  const r = prefixRange(prefix);
  if (after !== null) r.key = b64(`${after}\0`);
  const resp = await call('kv/range', {...r, keys_only: true, limit: String(PAGE)});
  const dirs = [];
  const leaves = [];
  let last = null;
  for (const kv of resp.kvs || []) {
    const k = text(kv.key);
    last = k;
    const rest = k.slice(prefix.length);
    const i = rest.indexOf('/');
    if (i >= 0 && i < rest.length - 1) dirs.push(prefix + rest.slice(0, i + 1));
    else leaves.push(k);
  }
  return {dirs, leaves, more: !!resp.more, last, count: resp.count};
}

/** Fills `ul` with the children of `prefix`, a page at a time. */
async function loadDir(ul, prefix, detail) {
  fill(ul, h('li', {class: 'muted'}, 'Loading…'));
  const seen = new Set();
  let after = null;
  const more = h('li', {}, h('button', {type: 'button', class: 'link', id: 'more'}, 'Load more…'));
  const page = async () => {
    let p;
    try {
      p = await listPage(prefix, after);
    } catch (e) {
      ul.append(h('li', {class: 'msg error', role: 'alert'}, `Cannot list ${prefix || 'keys'}: ${e.message}`));
      return;
    }
    more.remove();
    for (const d of p.dirs) {
      if (seen.has(d)) continue;
      seen.add(d);
      ul.append(dirNode(d, prefix, detail));
    }
    for (const k of p.leaves) ul.append(leafNode(k, prefix, detail));
    after = p.last;
    if (p.more) {
      more.firstChild.onclick = page;
      ul.append(more);
    }
    if (!ul.children.length) ul.append(h('li', {class: 'muted'}, `No keys under "${prefix}".`));
  };
  fill(ul);
  await page();
}

function dirNode(dir, parent, detail) {
  const children = h('ul', {class: 'tree', hidden: true});
  const name = dir.slice(parent.length);
  const toggle = h('button', {type: 'button', class: 'link dir', 'data-prefix': dir}, `▸ ${name}`);
  toggle.onclick = async () => {
    children.hidden = !children.hidden;
    toggle.textContent = `${children.hidden ? '▸' : '▾'} ${name}`;
    if (!children.hidden && !children.dataset.loaded) {
      children.dataset.loaded = '1';
      await loadDir(children, dir, detail);
    }
  };
  return h('li', {}, toggle, children);
}

function leafNode(key, parent, detail) {
  const a = h('a', {href: `#/keys?${new URLSearchParams({prefix: parent, key})}`, 'data-key': key, class: 'leaf'},
    key.slice(parent.length) || key);
  a.onclick = (ev) => {
    ev.preventDefault();
    setUrl(document.getElementById('prefix').value, key);
    openKey(detail, key);
  };
  return h('li', {}, a);
}

function formatSelect(initial) {
  return h('select', {name: 'format', class: 'format'},
    h('option', {value: 'text', selected: initial === 'text'}, 'Text'),
    h('option', {value: 'json', selected: initial === 'json'}, 'JSON'));
}

/** null if `value` may be sent in `format`, else the reason. */
function invalid(format, value) {
  if (format !== 'json') return null;
  try { JSON.parse(value); return null; } catch (e) { return `Invalid JSON, not saved: ${e.message}`; }
}

function looksJson(s) {
  if (!/^\s*[[{]/.test(s)) return false;
  try { JSON.parse(s); return true; } catch { return false; }
}

async function openKey(detail, key, message) {
  fill(detail, h('p', {class: 'muted'}, 'Loading…'));
  let kv;
  try {
    kv = ((await call('kv/range', {key: b64(key)})).kvs || [])[0];
  } catch (e) {
    fill(detail, h('h2', {class: 'mono'}, key), h('p', {class: 'msg error', role: 'alert'}, e.message));
    return;
  }
  if (!kv) {
    fill(detail, h('h2', {class: 'mono'}, key), h('p', {class: 'msg info'}, message || 'This key does not exist (any more).'));
    return;
  }
  const val = decode(kv.value);
  const msg = h('p', {id: 'key-msg', role: 'status', hidden: true});
  const area = h('textarea', {id: 'value', rows: 12, spellcheck: 'false'});
  area.value = val.text;
  const format = formatSelect(looksJson(val.text) ? 'json' : 'text');
  const save = h('button', {type: 'button', id: 'save'}, 'Save');
  const del = h('button', {type: 'button', id: 'delete', class: 'danger'}, 'Delete');
  const hist = h('div', {id: 'history'});
  const histBtn = h('button', {type: 'button', id: 'show-history'}, 'History');
  const reload = h('button', {type: 'button', id: 'reload'}, 'Reload');
  const pretty = h('button', {type: 'button', id: 'pretty'}, 'Pretty-print JSON');

  save.onclick = async () => {
    const bad = invalid(format.value, area.value);
    if (bad) return say(msg, bad);
    save.disabled = true;
    say(msg, 'Saving…', 'info');
    const put = {key: kv.key, value: b64(area.value)};
    if (kv.lease && kv.lease !== '0') put.ignore_lease = true;
    try {
      const r = await guarded(kv, {request_put: put});
      if (r.ok) return openKey(detail, key, `Saved at revision ${r.revision}.`);
      say(msg, r.conflict);
    } catch (e) {
      say(msg, `Not saved: ${e.message}`);
    } finally {
      save.disabled = false;
    }
  };
  del.onclick = async () => {
    if (del.dataset.armed !== '1') {
      del.dataset.armed = '1';
      del.textContent = 'Really delete?';
      return;
    }
    try {
      const r = await guarded(kv, {request_delete_range: {key: kv.key}});
      if (r.ok) return openKey(detail, key, `Deleted at revision ${r.revision}.`);
      say(msg, r.conflict);
    } catch (e) {
      say(msg, `Not deleted: ${e.message}`);
    }
  };
  histBtn.onclick = () => showHistory(hist, kv);
  reload.onclick = () => openKey(detail, key);
  pretty.onclick = () => {
    try { area.value = JSON.stringify(JSON.parse(area.value), null, 2); say(msg, ''); }
    catch (e) { say(msg, `Invalid JSON: ${e.message}`); }
  };

  fill(detail,
    h('h2', {class: 'mono', id: 'key-name'}, key),
    facts([
      ['Create revision', h('span', {id: 'create-rev'}, kv.create_revision)],
      ['Mod revision', h('span', {id: 'mod-rev'}, kv.mod_revision)],
      ['Version', h('span', {id: 'version'}, kv.version)],
      ['Lease', h('span', {id: 'lease'}, kv.lease && kv.lease !== '0' ? hexId(kv.lease) : 'none')],
      ['Size', `${bytes(val.size)}${val.binary ? ' (not UTF-8: shown with replacement characters)' : ''}`],
    ]),
    msg,
    h('label', {class: 'block'}, 'Value ', format),
    area,
    h('div', {class: 'toolbar'}, save, pretty, reload, histBtn, del),
    hist);
  if (message) say(msg, message, 'ok');
  if (val.binary) {
    // Saving the text shown would replace the bytes that are not UTF-8 with U+FFFD.
    area.readOnly = true;
    save.disabled = true;
    pretty.disabled = true;
    if (!message) say(msg, 'This value is not UTF-8 text: it is shown read-only, since saving it from here would change its bytes.', 'info');
  }
}

/** A Txn: `op` if the key's mod revision is still the shown one. */
async function guarded(kv, op) {
  const r = await call('kv/txn', {
    compare: [{key: kv.key, target: 'MOD', result: 'EQUAL', mod_revision: kv.mod_revision}],
    success: [op],
    failure: [{request_range: {key: kv.key}}],
  });
  const revision = r.header && r.header.revision;
  if (r.succeeded) return {ok: true, revision};
  const now = (((r.responses || [])[0] || {}).response_range || {}).kvs || [];
  const was = kv.mod_revision;
  const conflict = now.length
    ? `Conflict: the key changed since you opened it (mod revision ${was} → ${now[0].mod_revision}). Nothing was written; reload to see the current value.`
    : `Conflict: the key was deleted since you opened it (mod revision ${was}). Nothing was written.`;
  return {ok: false, conflict};
}

function newKey(detail, prefix, tree) {
  const name = h('input', {id: 'new-name', value: prefix, size: 40});
  const area = h('textarea', {id: 'new-value', rows: 8, spellcheck: 'false'});
  const format = formatSelect('text');
  const msg = h('p', {id: 'key-msg', role: 'status', hidden: true});
  const create = h('button', {type: 'submit', id: 'create'}, 'Create');
  const submit = async (ev) => {
    ev.preventDefault();
    if (!name.value) return say(msg, 'A key needs a name.');
    const bad = invalid(format.value, area.value);
    if (bad) return say(msg, bad);
    const key = b64(name.value);
    create.disabled = true;
    try {
      const r = await call('kv/txn', {
        compare: [{key, target: 'CREATE', result: 'EQUAL', create_revision: '0'}],
        success: [{request_put: {key, value: b64(area.value)}}],
      });
      if (!r.succeeded) return say(msg, `Not created: "${name.value}" already exists. Open it to edit it.`);
      await loadDir(tree, document.getElementById('prefix').value, detail);
      setUrl(document.getElementById('prefix').value, name.value);
      await openKey(detail, name.value, `Created at revision ${r.header.revision}.`);
    } catch (e) {
      say(msg, `Not created: ${e.message}`);
    } finally {
      create.disabled = false;
    }
  };
  fill(detail,
    h('h2', {}, 'New key'),
    h('form', {id: 'new-form', onsubmit: submit},
      h('label', {class: 'block'}, 'Key ', name),
      h('label', {class: 'block'}, 'Value ', format),
      area, msg,
      h('div', {class: 'toolbar'}, create)));
  name.focus();
}

/** Walks back through the key's earlier versions (same incarnation) and diffs each. */
async function showHistory(el, kv) {
  fill(el, h('p', {class: 'muted'}, 'Loading history…'));
  const versions = [kv];
  let note = '';
  let rev = BigInt(kv.mod_revision) - 1n;
  const created = BigInt(kv.create_revision);
  while (versions.length < HISTORY_MAX && rev >= created) {
    let p;
    try {
      p = ((await call('kv/range', {key: kv.key, revision: String(rev)})).kvs || [])[0];
    } catch (e) {
      note = `Older versions are not available: ${e.message}`;
      break;
    }
    if (!p) break;
    versions.push(p);
    rev = BigInt(p.mod_revision) - 1n;
  }
  if (versions.length === HISTORY_MAX && rev >= created) note = `Showing the last ${HISTORY_MAX} versions.`;
  const items = versions.map((v, i) => {
    const older = versions[i + 1];
    const lines = older ? lineDiff(text(older.value), text(v.value))
      : text(v.value).split('\n').map((line) => ({op: '+', line}));
    const pre = h('pre', {class: 'diff'}, lines.map((d) =>
      h('div', {class: d.op === '+' ? 'add' : d.op === '-' ? 'del' : 'same'}, `${d.op} ${d.line}`)));
    return h('details', {open: i === 0, class: 'version'},
      h('summary', {}, `mod revision ${v.mod_revision} · version ${v.version}`,
        older ? ` (diff from revision ${older.mod_revision})` : ' (created)'),
      pre);
  });
  fill(el, h('h3', {}, `History (${versions.length} version${versions.length === 1 ? '' : 's'})`),
    note ? h('p', {class: 'muted'}, note) : null, items);
}
