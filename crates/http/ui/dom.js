// DOM helpers. Text always goes in as text nodes (never innerHTML), so keys and values
// from the store cannot inject markup.

/** h('div', {class: 'x', onclick: f}, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A message line: kind is 'error', 'ok' or 'info'. Empty text hides it. */
export function say(el, text, kind = 'error') {
  el.className = `msg ${kind}`;
  el.textContent = text || '';
  el.hidden = !text;
}

/** A two-column table of [label, value] rows. */
export function facts(rows) {
  return h('table', {class: 'facts'},
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));
}

/** A table with a header row. */
export function table(head, rows, attrs = {}) {
  return h('table', {class: 'grid', ...attrs},
    h('thead', {}, h('tr', {}, head.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows));
}

export function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** An etcd uint64 id (decimal string in JSON) as etcdctl prints it (hex). */
export function hexId(id) {
  try { return BigInt(id || 0).toString(16); } catch { return String(id); }
}
