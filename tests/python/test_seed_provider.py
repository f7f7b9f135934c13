"""The seed application's etcd config provider pattern with python-etcd3, against a fresh
server (oxcd, or etcd with OXCD_TEST_SERVER=etcd): load a namespace prefix with get_prefix,
follow it with add_watch_prefix_callback (one key at a time), and when the server goes away
and comes back, reconnect with backoff, reload and watch again.

Every wait is bounded; the provider's watch is canceled at the end.
"""

import json
import re
import threading
import time

import etcd3
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")

NS_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
WAIT = 15.0


class Provider:
    """What the seed does: an in-memory copy of /cwm/{ns}/webhooks/, kept live."""

    def __init__(self, port, namespace):
        if not NS_RE.match(namespace):
            raise ValueError("invalid namespace %r" % namespace)
        self.port = port
        self.prefix = "/cwm/%s/webhooks/" % namespace
        self.hooks = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.reconnects = 0
        self.client = None
        self.watch_id = None
        self.stopped = False
        self.last_error = None

    def _connect_and_load(self):
        self.client = etcd3.client("127.0.0.1", self.port, timeout=5)
        hooks = {}
        # List at revision R, then watch from R + 1: no write between the two is lost.
        resp = self.client.get_prefix_response(self.prefix)
        for kv in resp.kvs:
            hid = kv.key.decode()[len(self.prefix):]
            try:
                hooks[hid] = json.loads(kv.value)
            except ValueError:  # keep the last good config
                if hid in self.hooks:
                    hooks[hid] = self.hooks[hid]
        with self.lock:
            self.hooks = hooks
            self.changed.notify_all()
        self.watch_id = self.client.add_watch_prefix_callback(
            self.prefix, self._on_event, start_revision=resp.header.revision + 1
        )

    def start(self):
        self._connect_and_load()

    def _on_event(self, resp):
        if resp is None or isinstance(resp, Exception):
            # The watch stream ended (server gone): reconnect, reload, watch again.
            threading.Thread(target=self._reconnect, daemon=True).start()
            return
        with self.lock:
            for ev in resp.events:
                hid = ev.key.decode()[len(self.prefix):]
                if isinstance(ev, etcd3.events.DeleteEvent):
                    self.hooks.pop(hid, None)
                else:
                    try:
                        self.hooks[hid] = json.loads(ev.value)
                    except ValueError:
                        pass  # keep the last good config
            self.changed.notify_all()

    def _reconnect(self):
        delay = 0.2
        deadline = time.time() + 60
        while not self.stopped and time.time() < deadline:
            try:
                try:
                    self.client.close()
                except Exception:
                    pass
                self._connect_and_load()
                with self.lock:
                    self.reconnects += 1
                    self.changed.notify_all()
                return
            except Exception as e:  # the server is not back yet
                self.last_error = repr(e)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def wait_for(self, pred, timeout=WAIT):
        end = time.time() + timeout
        with self.lock:
            while not pred(self):
                left = end - time.time()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def stop(self):
        self.stopped = True
        try:
            if self.watch_id is not None:
                self.client.cancel_watch(self.watch_id)
            self.client.close()
        except Exception:
            pass


def test_provider_loads_watches_and_reconnects(client, server):
    client.put("/cwm/prod/webhooks/github", json.dumps({"module": "log"}))
    client.put("/cwm/other/webhooks/x", json.dumps({"module": "kafka"}))
    with pytest.raises(ValueError):
        Provider(server.client_port, "bad/ns")
    p = Provider(server.client_port, "prod")
    p.start()
    try:
        assert p.hooks == {"github": {"module": "log"}}
        client.put("/cwm/prod/webhooks/stripe", json.dumps({"module": "kafka"}))
        assert p.wait_for(lambda s: "stripe" in s.hooks), p.hooks
        client.put("/cwm/prod/webhooks/stripe", "not json")
        client.delete("/cwm/prod/webhooks/github")
        assert p.wait_for(lambda s: "github" not in s.hooks), p.hooks
        assert p.hooks["stripe"] == {"module": "kafka"}, "bad value keeps the last good one"

        # The server dies and comes back: the provider reconnects and reloads.
        server.kill()
        server.start()
        writer = etcd3.client("127.0.0.1", server.client_port, timeout=10)
        try:
            writer.put("/cwm/prod/webhooks/after", json.dumps({"module": "log"}))
            assert p.wait_for(lambda s: s.reconnects >= 1 and "after" in s.hooks, 60), (p.reconnects, p.hooks, p.last_error)
            writer.put("/cwm/prod/webhooks/live", json.dumps({"module": "log"}))
            assert p.wait_for(lambda s: "live" in s.hooks), p.hooks
            assert set(p.hooks) == {"stripe", "after", "live"}
        finally:
            writer.close()
    finally:
        p.stop()
