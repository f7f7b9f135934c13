"""The JSON gateway driven by python-etcd3gw 2.7 (OpenStack's etcd v3 HTTP client): API
path discovery from /version, put/get/get_prefix, replace (a txn comparing the value),
delete, leases (grant, ttl, refresh, keys, revoke), a watch (events through the streamed
/v3/watch), and its Lock (lease + txn) with contention. Every wait is bounded."""

import threading
import time

import etcd3gw


def gw(server):
    return etcd3gw.client(host="127.0.0.1", port=server.client_port, timeout=10)


def test_kv_txn_and_delete(server):
    c = gw(server)
    assert c.api_path == "/v3/"
    assert c.put("gw/a", "1")
    assert c.put("gw/b", "2")
    assert c.get("gw/a") == [b"1"]
    pairs = c.get_prefix("gw/")
    assert [v for v, _ in pairs] == [b"1", b"2"]
    assert [m["key"] for _, m in pairs] == [b"gw/a", b"gw/b"]
    assert c.replace("gw/a", "1", "one") is True
    assert c.replace("gw/a", "1", "uno") is False
    assert c.get("gw/a") == [b"one"]
    assert c.delete("gw/b") is True
    assert c.delete("gw/b") is False
    assert c.get("gw/b") == []
    st = c.status()
    assert int(st["header"]["revision"]) >= 4, st


def test_leases(server):
    c = gw(server)
    lease = c.lease(ttl=30)
    assert 0 < lease.ttl() <= 30
    assert c.put("gw/leased", "x", lease=lease)
    assert lease.keys() == [b"gw/leased"]
    assert lease.refresh() == 30
    assert lease.revoke() is True
    assert c.get("gw/leased") == []


def test_watch_sees_a_put(server):
    c = gw(server)
    events, cancel = c.watch("gw/w")
    got = []

    def reader():
        for ev in events:
            got.append(ev)
            break

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    # The watch is created asynchronously: put until the reader sees an event.
    while not got and time.monotonic() < deadline:
        c.put("gw/w", "v")
        t.join(0.3)
    cancel()
    assert got, "no watch event within 10 s"
    ev = got[0]
    assert ev["kv"]["key"] == b"gw/w" and ev["kv"]["value"] == b"v", ev


def test_lock_is_exclusive(server):
    # etcd3gw's Lock is a txn on create_revision == 0 with a lease: acquire does not wait.
    c = gw(server)
    first = c.lock("gw-lock", ttl=30)
    assert first.acquire()
    assert first.is_acquired()
    second = c.lock("gw-lock", ttl=30)
    assert not second.acquire(), "the second lock was granted while the first was held"
    assert not second.is_acquired()
    assert first.refresh() == 30
    assert first.release()
    assert second.acquire()
    assert second.is_acquired() and not first.is_acquired()
    assert second.release()
