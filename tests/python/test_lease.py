"""python-etcd3 0.12 leases against a fresh server: grant, put with a lease, refresh,
time-to-live, revoke, expiry, locks (a txn plus a lease) with contention, and a
service-registration scenario (keep-alive client killed, key gone after the TTL,
watchers see the delete). Every wait is bounded."""

import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

import etcd3
from conftest import skip_or_fail
from etcd3 import etcdrpc

LEASE_NOT_FOUND = "etcdserver: requested lease not found"


def wait_until(pred, limit, step=0.1):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def watch_available(client):
    """Whether the server answers Watch (a missing Watch fails the tests that need it)."""
    stub = etcdrpc.WatchStub(client.channel)

    def requests():
        yield etcdrpc.WatchRequest(
            create_request=etcdrpc.WatchCreateRequest(key=b"oxcd-watch-probe")
        )
        time.sleep(2)

    try:
        for resp in stub.Watch(requests(), timeout=3):
            return resp.created
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED):
            return False
        raise
    return False


def test_grant_put_refresh_timetolive_revoke(client):
    lease = client.lease(30)
    assert lease.id > 0
    assert lease.ttl == 30
    client.put("svc/a", "1", lease=lease)
    client.put("svc/b", "2", lease=lease.id)
    value, meta = client.get("svc/a")
    assert value == b"1" and meta.lease_id == lease.id
    assert lease.granted_ttl == 30
    assert 28 <= lease.remaining_ttl <= 30
    assert sorted(lease.keys) == [b"svc/a", b"svc/b"]
    responses = list(lease.refresh())
    assert [(r.ID, r.TTL) for r in responses] == [(lease.id, 30)]
    # Client-chosen id; granting it twice fails.
    mine = client.lease(10, lease_id=4242)
    assert mine.id == 4242
    with pytest.raises(etcd3.exceptions.PreconditionFailedError):
        client.lease(10, lease_id=4242)
    lease.revoke()
    assert client.get("svc/a") == (None, None)
    assert client.get("svc/b") == (None, None)
    assert lease.remaining_ttl == -1
    # A refresh of a revoked lease answers TTL 0.
    assert [r.TTL for r in client.refresh_lease(lease.id)] == [0]


def test_minimum_ttl_and_missing_lease(client):
    assert client.lease(1).ttl == 2
    with pytest.raises(grpc.RpcError) as e:
        client.put("k", "v", lease=12345)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == LEASE_NOT_FOUND
    assert client.get("k") == (None, None)


def test_expiry_removes_the_key_and_refresh_prevents_it(client):
    short = client.lease(2)
    kept = client.lease(2)
    client.put("short", "x", lease=short)
    client.put("kept", "y", lease=kept)
    end = time.monotonic() + 4
    while time.monotonic() < end:
        list(kept.refresh())
        time.sleep(0.4)
    assert client.get("short") == (None, None)
    assert client.get("kept")[0] == b"y"
    assert wait_until(lambda: client.get("kept") == (None, None), 8)


def test_lock_contention_between_two_clients(server, client):
    other = etcd3.client("127.0.0.1", server.client_port, timeout=10)
    try:
        a = client.lock("job", ttl=30)
        b = other.lock("job", ttl=30)
        assert a.acquire(timeout=0) is True
        assert a.is_acquired()
        # The key carries the lock's lease.
        _, meta = client.get("/locks/job")
        assert meta.lease_id == a.lease.id
        assert b.acquire(timeout=0) is False
        assert not b.is_acquired()
        assert a.release()
        assert b.acquire(timeout=0) is True
        assert b.is_acquired() and not a.is_acquired()
        list(b.refresh())
        assert b.release()
        # A holder that stops refreshing loses the lock when its lease expires.
        short = client.lock("job", ttl=2)
        assert short.acquire(timeout=0)
        assert not b.acquire(timeout=0)
        assert wait_until(lambda: b.acquire(timeout=0), 8, step=0.25)
        assert b.is_acquired()
    finally:
        other.close()


def test_lock_waiter_is_woken_by_release(server, client):
    if not watch_available(client):
        skip_or_fail("the server does not answer Watch")
    other = etcd3.client("127.0.0.1", server.client_port, timeout=10)
    try:
        a = client.lock("w", ttl=30)
        assert a.acquire(timeout=0)
        threading.Timer(1.0, a.release).start()
        b = other.lock("w", ttl=30)
        t0 = time.monotonic()
        assert b.acquire(timeout=10) is True
        assert time.monotonic() - t0 < 8
    finally:
        other.close()


REGISTER = r"""
import sys, time, etcd3
c = etcd3.client("127.0.0.1", int(sys.argv[1]), timeout=5)
lease = c.lease(2)
c.put("services/api/1", "10.0.0.7:8080", lease=lease)
print("registered", flush=True)
end = time.monotonic() + 60
while time.monotonic() < end:
    list(lease.refresh())
    time.sleep(0.5)
"""


def test_service_registration_key_disappears_after_client_dies(server, client):
    if not watch_available(client):
        skip_or_fail("the server does not answer Watch")
    events = []

    def on_watch(resp):
        # python-etcd3 0.12 hands callbacks a WatchResponse (or an error).
        events.extend(getattr(resp, "events", [resp]))

    watch_id = client.add_watch_prefix_callback("services/", on_watch)
    proc = subprocess.Popen(
        [sys.executable, "-c", REGISTER, str(server.client_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = proc.stdout.readline().decode().strip()
        assert line == "registered", proc.stderr.read().decode()
        # Kept alive well past its TTL.
        time.sleep(3)
        assert client.get("services/api/1")[0] == b"10.0.0.7:8080"
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: client.get("services/api/1") == (None, None), 8)
        assert time.monotonic() - killed >= 0.5
        assert wait_until(
            lambda: any(isinstance(e, etcd3.events.DeleteEvent) for e in events), 5
        ), events
        deletes = [e for e in events if isinstance(e, etcd3.events.DeleteEvent)]
        assert deletes[0].key == b"services/api/1"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        client.cancel_watch(watch_id)
