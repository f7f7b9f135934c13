"""python-etcd3 0.12 watches against a fresh server: callbacks, iterators, history, cancel.

Every wait is bounded (threading.Event / queue timeouts); watches are canceled at the end.
"""

import queue
import threading

import etcd3
import pytest
from etcd3 import events

# python-etcd3's watcher thread may outlive a test's client and log a "Channel closed" error.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")

WAIT = 10.0


def other_client(server):
    return etcd3.client("127.0.0.1", server.client_port, timeout=10)


def test_prefix_callback_gets_puts_from_another_client(client, server):
    got = queue.Queue()

    def callback(resp):
        for ev in resp.events:
            got.put(ev)

    watch_id = client.add_watch_prefix_callback("/svc/", callback)
    try:
        writer = other_client(server)
        try:
            writer.put("/svc/a", "1")
            writer.put("/elsewhere", "x")
            writer.put("/svc/b", "2")
            writer.delete("/svc/a")
        finally:
            writer.close()
        seen = [got.get(timeout=WAIT) for _ in range(3)]
    finally:
        client.cancel_watch(watch_id)
    assert [type(e) for e in seen] == [events.PutEvent, events.PutEvent, events.DeleteEvent]
    assert [(e.key, e.value) for e in seen[:2]] == [(b"/svc/a", b"1"), (b"/svc/b", b"2")]
    assert seen[2].key == b"/svc/a"
    revs = [e.mod_revision for e in seen]
    assert revs == sorted(revs) and len(set(revs)) == 3


def test_watch_prefix_iterator(client, server):
    it, cancel = client.watch_prefix("/it/")
    done = threading.Event()
    seen = []

    def consume():
        for ev in it:
            seen.append((ev.key, ev.value))
            if len(seen) == 2:
                break
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    try:
        writer = other_client(server)
        try:
            writer.put("/it/x", "1")
            writer.put("/it/y", "2")
        finally:
            writer.close()
        assert done.wait(WAIT), "iterator got %r" % seen
    finally:
        cancel()
    t.join(WAIT)
    assert seen == [(b"/it/x", b"1"), (b"/it/y", b"2")]


def test_watch_from_start_revision_replays_history(client):
    first = client.put("h", "1").header.revision
    client.put("h", "2")
    client.put("h", "3")
    got = queue.Queue()
    watch_id = client.add_watch_callback(
        "h", lambda resp: [got.put(e) for e in resp.events], start_revision=first
    )
    try:
        values = [got.get(timeout=WAIT).value for _ in range(3)]
        client.put("h", "4")
        values.append(got.get(timeout=WAIT).value)
    finally:
        client.cancel_watch(watch_id)
    assert values == [b"1", b"2", b"3", b"4"]


def test_cancel_stops_events_and_other_watches_continue(client):
    a, b = queue.Queue(), queue.Queue()
    wa = client.add_watch_callback("ca", lambda r: [a.put(e) for e in r.events])
    wb = client.add_watch_callback("cb", lambda r: [b.put(e) for e in r.events])
    try:
        client.put("ca", "1")
        assert a.get(timeout=WAIT).value == b"1"
        client.cancel_watch(wa)
        client.put("ca", "2")
        client.put("cb", "x")
        assert b.get(timeout=WAIT).value == b"x"
        assert a.empty()
    finally:
        client.cancel_watch(wb)


def test_many_watchers_on_one_prefix(client):
    n = 50
    queues = [queue.Queue() for _ in range(n)]
    ids = [
        client.add_watch_prefix_callback("/many/", (lambda q: lambda r: [q.put(e) for e in r.events])(q))
        for q in queues
    ]
    try:
        rev = client.put("/many/k", "v").header.revision
        for q in queues:
            assert q.get(timeout=WAIT).mod_revision == rev
    finally:
        for i in ids:
            client.cancel_watch(i)
