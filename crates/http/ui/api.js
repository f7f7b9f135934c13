// The only way the pages reach the server: the JSON gateway (/v3/...) and /metrics.
// Keys and values travel as base64 of their bytes, int64s as decimal strings, and the
// user's token (if any) as the Authorization header, exactly as etcd's gateway expects.

const TOKEN = 'oxcd.token';
const USER = 'oxcd.user';

export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;      // gRPC code number (grpc-gateway's "code")
    this.status = status;  // HTTP status
  }
  get permissionDenied() { return this.code === 7 || /permission denied/i.test(this.message); }
  /** No token, or one the server no longer knows: log in (again). */
  get authLost() { return AUTH_LOST.test(this.message); }
}

// Errors that mean "log in (again)": no token, an expired or unknown one.
const AUTH_LOST = /user name is empty|invalid auth token|auth token is not provided|authentication failed, invalid user ID/i;

let onAuthLost = () => {};
export function setAuthLostHandler(f) { onAuthLost = f; }

export function session() {
  return {token: sessionStorage.getItem(TOKEN), user: sessionStorage.getItem(USER)};
}
export function setSession(token, user) {
  if (token) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, user);
  } else {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(USER);
  }
}

function headers() {
  const h = {'Content-Type': 'application/json'};
  const t = sessionStorage.getItem(TOKEN);
  if (t) h.Authorization = t;
  return h;
}

async function errorOf(r, text) {
  let j = null;
  try { j = JSON.parse(text); } catch { /* not JSON */ }
  if (r.status === 404 && j && j.message === 'Not Found') {
    return new ApiError('The JSON gateway is not served on this listener: open the dashboard on a client URL.', 12, 404);
  }
  const msg = (j && (j.message || j.error)) || `HTTP ${r.status} ${r.statusText}`;
  return new ApiError(msg, j ? j.code : undefined, r.status);
}

/** POST /v3/<path> with `body` as JSON; resolves to the response message. */
export async function call(path, body = {}, opts = {}) {
  let r;
  try {
    r = await fetch(`/v3/${path}`, {
      method: 'POST', headers: headers(), body: JSON.stringify(body), signal: opts.signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(`Cannot reach the server: ${e.message}`, 14, 0);
  }
  const text = await r.text();
  if (!r.ok) {
    const err = await errorOf(r, text);
    if (err.authLost && !opts.noAuthHandler) onAuthLost(err);
    throw err;
  }
  try { return text ? JSON.parse(text) : {}; } catch {
    throw new ApiError(`Unexpected answer from the server (HTTP ${r.status})`, 2, r.status);
  }
}

/** A streaming gateway call (e.g. watch): yields each `result`, throws on an `error` line. */
export async function* stream(path, body, signal) {
  let r;
  try {
    r = await fetch(`/v3/${path}`, {method: 'POST', headers: headers(), body: JSON.stringify(body), signal});
  } catch (e) {
    if (e.name === 'AbortError') return;
    throw new ApiError(`Cannot reach the server: ${e.message}`, 14, 0);
  }
  if (!r.ok) {
    const err = await errorOf(r, await r.text());
    if (err.authLost) onAuthLost(err);
    throw err;
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        const m = JSON.parse(line);
        if (m.error) {
          const e = new ApiError(m.error.message, m.error.grpc_code, m.error.http_code);
          if (e.authLost) onAuthLost(e);
          throw e;
        }
        yield m.result;
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    throw e;
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** GET /metrics as text. */
export async function metricsText(signal) {
  const r = await fetch('/metrics', {signal});
  if (!r.ok) throw new ApiError(`/metrics answered HTTP ${r.status}`, 2, r.status);
  return r.text();
}

// --- bytes <-> base64 -------------------------------------------------------------------

export function toBytes(s) { return typeof s === 'string' ? new TextEncoder().encode(s) : s; }

export function b64(s) {
  const bytes = toBytes(s);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

export function unb64bytes(s) {
  if (!s) return new Uint8Array(0);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Decoded text, and whether the bytes were not valid UTF-8 (then shown with U+FFFD). */
export function decode(s) {
  const bytes = unb64bytes(s);
  try {
    return {text: new TextDecoder('utf-8', {fatal: true}).decode(bytes), binary: false, size: bytes.length};
  } catch {
    return {text: new TextDecoder().decode(bytes), binary: true, size: bytes.length};
  }
}

export function text(s) { return decode(s).text; }

/** etcd's prefix end (clientv3.GetPrefixRangeEnd), as base64; '' prefix means all keys. */
export function prefixEnd(prefix) {
  const b = Array.from(toBytes(prefix));
  while (b.length && b[b.length - 1] === 0xff) b.pop();
  if (!b.length) return b64(new Uint8Array([0]));
  b[b.length - 1]++;
  return b64(new Uint8Array(b));
}

/** The range request for every key under `prefix`. */
export function prefixRange(prefix) {
  return {key: b64(prefix || '\0'), range_end: prefixEnd(prefix)};
}
