#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target to fuzz/corpus/<target>/ (small, valid or
nearly valid inputs, hand-encoded protobuf). Run from anywhere: python3 fuzz/seeds.py"""
import hashlib
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def f_int(num, v):
    return varint(num << 3) + varint(v) if v else b""


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- request_decode: kind byte + etcdserverpb message -------------------------------
def put(key, value=b"", lease=0, prev_kv=False, ignore_value=False):
    return (f_bytes(1, key) + (f_bytes(2, value) if value else b"") + f_int(3, lease)
            + f_int(4, int(prev_kv)) + f_int(5, int(ignore_value)))


def rng(key, end=b"", limit=0, rev=0, sort_order=0, sort_target=0, count_only=False):
    return (f_bytes(1, key) + (f_bytes(2, end) if end else b"") + f_int(3, limit)
            + f_int(4, rev) + f_int(5, sort_order) + f_int(6, sort_target)
            + f_int(9, int(count_only)))


def delete(key, end=b"", prev_kv=False):
    return f_bytes(1, key) + (f_bytes(2, end) if end else b"") + f_int(3, int(prev_kv))


def op(kind, body):  # RequestOp: 1 range, 2 put, 3 delete, 4 txn
    return f_bytes(kind, body)


def compare(key, result=0, target=0, version=None, value=None, mod=None):
    b = f_int(1, result) + f_int(2, target) + f_bytes(3, key)
    if version is not None:
        b += f_int(4, version)
    if mod is not None:
        b += f_int(6, mod)
    if value is not None:
        b += f_bytes(7, value)
    return b


def txn(cmps, success, failure=()):
    return (b"".join(f_bytes(1, c) for c in cmps) + b"".join(f_bytes(2, o) for o in success)
            + b"".join(f_bytes(3, o) for o in failure))


rd = "request_decode"
write(rd, "range_one", b"\x00" + rng(b"foo"))
write(rd, "range_prefix_sorted", b"\x00" + rng(b"a", b"z", limit=2, sort_order=2, sort_target=3))
write(rd, "range_all_count", b"\x00" + rng(b"\x00", b"\x00", count_only=True, rev=1))
write(rd, "put", b"\x01" + put(b"foo", b"bar"))
write(rd, "put_prev_kv", b"\x01" + put(b"foo", b"baz", prev_kv=True))
write(rd, "put_ignore_value", b"\x01" + put(b"foo", ignore_value=True))
write(rd, "delete_range", b"\x02" + delete(b"a", b"z", prev_kv=True))
write(rd, "txn_cas", b"\x03" + txn(
    [compare(b"foo", result=0, target=2, value=b"bar")],
    [op(2, put(b"foo", b"new")), op(1, rng(b"foo"))],
    [op(3, delete(b"foo"))]))
write(rd, "txn_nested", b"\x03" + txn(
    [compare(b"k", target=0, version=0)],
    [op(4, txn([compare(b"k", result=3, target=1, mod=1)], [op(2, put(b"k", b"v"))]))]))
write(rd, "txn_readonly", b"\x03" + txn([], [op(1, rng(b"a", b"b"))]))
write(rd, "compaction", b"\x04" + f_int(1, 2))
write(rd, "lease_grant", b"\x05" + f_int(1, 60) + f_int(2, 7))
write(rd, "auth_user_add", b"\x07" + f_bytes(1, "root") + f_bytes(2, "pw"))

# --- raft_message: setup byte + RaftBatch{repeated bytes messages = 1} ----------------
# The node starts as a bootstrapped member: snapshot at index 1, term 1.
def entry(term, index, data=b"", etype=0):
    return f_int(1, etype) + f_int(2, term) + f_int(3, index) + (f_bytes(4, data) if data else b"")


def msg(t, frm, term=0, log_term=0, index=0, entries=(), commit=0, reject=False, snap=None,
        to=1, context=b""):
    b = (f_int(1, t) + f_int(2, to) + f_int(3, frm) + f_int(4, term) + f_int(5, log_term)
         + f_int(6, index) + b"".join(f_bytes(7, e) for e in entries) + f_int(8, commit)
         + f_int(10, int(reject)))
    if snap is not None:
        b += f_bytes(9, snap)
    if context:
        b += f_bytes(12, context)
    return b


def batch(*msgs):
    return b"".join(f_bytes(1, m) for m in msgs)


def snapshot(index, term, voters):
    cs = b"".join(f_int(1, v) for v in voters)
    meta = f_bytes(1, cs) + f_int(2, index) + f_int(3, term)
    return f_bytes(2, meta)


rm = "raft_message"
write(rm, "heartbeat", b"\x00" + batch(msg(8, 2, term=2)))
write(rm, "append", b"\x00" + batch(
    msg(3, 2, term=2, index=1, log_term=1, entries=[entry(2, 2), entry(2, 3, b"x")], commit=2),
    msg(8, 2, term=2, commit=3)))
write(rm, "vote_request", b"\x00" + batch(msg(5, 3, term=5, index=1, log_term=1)))
write(rm, "prevote_request", b"\x02" + batch(msg(17, 3, term=5, index=1, log_term=1)))
write(rm, "campaign_win", b"\x01" + batch(
    msg(6, 2, term=2), msg(4, 2, term=2, index=2), msg(9, 3, term=2),
    msg(15, 2, term=0, entries=[entry(0, 0, b"ctx")])))
write(rm, "snapshot", b"\x00" + batch(msg(7, 2, term=3, snap=snapshot(10, 3, [1, 2, 3]))))
write(rm, "append_reject", b"\x01" + batch(
    msg(6, 3, term=2), msg(4, 3, term=2, index=5, reject=True)))
write(rm, "timeout_now", b"\x00" + batch(msg(14, 2, term=1), msg(13, 2, term=1)))
write(rm, "read_index", b"\x00" + batch(
    msg(8, 2, term=2), msg(16, 2, term=2, index=0, entries=[entry(0, 0, b"r")])))
write(rm, "not_for_us", b"\x00" + batch(msg(8, 2, term=2, to=3), msg(8, 9, term=2)))

# --- wal_recovery: mode byte + segment (even: raw; odd: [u16 len][payload] frames) ----
def rec(kind, body):
    return bytes([kind]) + struct.pack("<I", len(body)) + body


def hard_state(term, vote, commit):
    return f_int(1, term) + f_int(2, vote) + f_int(3, commit)


def conf_state(voters):
    return b"".join(f_int(1, v) for v in voters)


def snap_meta(index, term, voters):
    return f_bytes(1, conf_state(voters)) + f_int(2, index) + f_int(3, term)


def frame(payload):
    head = struct.pack("<II", len(payload), zlib.crc32(payload))
    out = head + payload
    return out + b"\x00" * (-len(out) % 8)


boot = (rec(4, snap_meta(1, 1, [1])) + rec(3, conf_state([1])) + rec(2, hard_state(1, 0, 1)))
ents = rec(1, entry(2, 2)) + rec(1, entry(2, 3, b"put")) + rec(2, hard_state(2, 1, 3))
wr = "wal_recovery"
write(wr, "raw_bootstrap", b"\x00" + frame(boot) + frame(ents))
write(wr, "raw_torn_tail", b"\x00" + frame(boot) + frame(ents)[:-5] + b"\x00" * 16)
write(wr, "raw_mid_corrupt", b"\x00" + frame(boot)[:-1] + b"\xff" + frame(ents))
write(wr, "raw_zero_gap", b"\x00" + frame(boot) + b"\x00" * 8 + frame(ents))


def frames(*payloads):
    return b"\x01" + b"".join(struct.pack("<H", len(p)) + p for p in payloads)


write(wr, "frames_bootstrap", frames(boot, ents))
write(wr, "frames_conflict", frames(boot, ents, rec(1, entry(3, 3)) + rec(2, hard_state(3, 1, 3))))
write(wr, "frames_truncate", frames(boot, ents, rec(5, struct.pack(">Q", 2))))
write(wr, "frames_gap", frames(boot, rec(1, entry(2, 5))))
write(wr, "frames_commit_beyond", frames(boot, rec(2, hard_state(2, 1, 9))))

# --- snapshot_restore: mode byte + file (even: whole; odd: the dump, trailer added) ---
def dump(tables):
    b = b"OXCDSNAP" + struct.pack(">I", 1)
    rows = 0
    for name, kvs in tables:
        b += b"\x01" + struct.pack(">H", len(name)) + name.encode()
        for k, v in kvs:
            b += b"\x02" + struct.pack(">II", len(k), len(v)) + k + v
            rows += 1
    return b + b"\x03" + struct.pack(">Q", rows)


def revkey(main, sub=0):
    return struct.pack(">q", main) + b"_" + struct.pack(">q", sub)


def kv(key, value, create, mod, version, lease=0):
    return (f_bytes(1, key) + f_int(2, create) + f_int(3, mod) + f_int(4, version)
            + f_bytes(5, value) + f_int(6, lease))


def sealed(d):
    d = d + b"\x00" * (-len(d) % 512)
    return d + hashlib.sha256(d).digest()


tables = [
    ("key", [(revkey(2), kv(b"foo", b"bar", 2, 2, 1)), (revkey(3), kv(b"foo", b"baz", 2, 3, 2))]),
    ("meta", [(b"finishedCompactRev", revkey(2)), (b"consistent_index", struct.pack(">Q", 9))]),
    ("lease", [(struct.pack(">q", 7), f_int(1, 7) + f_int(2, 60))]),
    ("members", [(b"1", b"{}")]),
    ("authUsers", []),
    ("authRoles", []),
    ("alarm", []),
]
sr = "snapshot_restore"
write(sr, "whole_valid", b"\x00" + sealed(dump(tables)))
write(sr, "whole_empty", b"\x00" + sealed(dump([])))
write(sr, "whole_bad_sha", b"\x00" + sealed(dump(tables))[:-1] + b"\x00")
write(sr, "whole_truncated", b"\x00" + sealed(dump(tables))[:300])
write(sr, "dump_valid", b"\x01" + dump(tables))
write(sr, "dump_unknown_table", b"\x01" + dump([("nope", [(b"k", b"v")])]))
write(sr, "dump_wrong_count", b"\x01" + dump(tables)[:-1] + b"\x09")

# --- gateway_json: kind byte + HTTP body ---------------------------------------------
gj = "gateway_json"
for i, (name, body) in enumerate([
    ("range", '{"key":"Zm9v","range_end":"Zm9w","limit":"10","sort_order":"DESCEND"}'),
    ("put", '{"key":"Zm9v","value":"YmFy","lease":"7","prev_kv":true}'),
    ("delete", '{"key":"YQ==","range_end":"AA=="}'),
    ("txn", '{"compare":[{"result":"EQUAL","target":"VALUE","key":"Zm9v","value":"YmFy"}],'
            '"success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}],'
            '"failure":[{"request_range":{"key":"Zm9v"}}]}'),
    ("compaction", '{"revision":"5","physical":true}'),
    ("lease_grant", '{"TTL":"60","ID":"0"}'),
    ("lease_keepalive", '{"ID":"7"}{"ID":7}'),
    ("watch", '{"create_request":{"key":"Zm9v","start_revision":"1","filters":["NOPUT"]}}'),
    ("user_add", '{"name":"root","password":"pw","options":{"no_password":false}}'),
    ("role_grant", '{"name":"r","perm":{"permType":"READWRITE","key":"YQ==","range_end":"Yg=="}}'),
    ("authenticate", '{"name":"root","password":"pw"}'),
    ("member_add", '{"peerURLs":["http://127.0.0.1:2380"],"isLearner":true}'),
    ("alarm", '{"action":"GET","memberID":"0","alarm":"NOSPACE"}'),
    ("lock", '{"name":"bG9jaw==","lease":"7"}'),
    ("campaign", '{"name":"ZQ==","lease":"7","value":"dg=="}'),
    ("proclaim", '{"leader":{"name":"ZQ==","key":"aw==","rev":"3","lease":"7"},"value":"dg=="}'),
]):
    write(gj, name, bytes([i]) + body.encode())
write(gj, "empty_body", b"\x01  ")
write(gj, "deep_nesting", b"\x03" + b'{"success":[{"request_txn":' * 40 + b"{}" + b"}]}" * 40)
