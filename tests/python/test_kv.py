"""python-etcd3 0.12 against a fresh server: KV, transactions, status, members."""

import grpc
import pytest


def revision(client):
    return client.get_response("rev-probe").header.revision


def test_fresh_server_is_empty_at_revision_1(client):
    assert revision(client) == 1
    assert client.get("nope") == (None, None)
    assert list(client.get_all()) == []


def test_put_get_and_metadata(client):
    r = client.put("foo", "bar")
    assert r.header.revision == 2
    value, meta = client.get("foo")
    assert value == b"bar"
    assert meta.key == b"foo"
    assert (meta.create_revision, meta.mod_revision, meta.version) == (2, 2, 1)
    assert meta.lease_id == 0

    r = client.put("foo", "baz", prev_kv=True)
    assert r.header.revision == 3
    assert r.prev_kv.value == b"bar"
    assert r.prev_kv.mod_revision == 2
    value, meta = client.get("foo")
    assert value == b"baz"
    assert (meta.create_revision, meta.mod_revision, meta.version) == (2, 3, 2)
    # Binary values round-trip.
    client.put(b"bin\x00key", b"\xff\x00\x01")
    assert client.get(b"bin\x00key")[0] == b"\xff\x00\x01"


def test_get_prefix_get_all_and_sorting(client):
    for k, v in [("p/3", "c"), ("p/1", "e"), ("p/2", "a"), ("q/1", "x")]:
        client.put(k, v)
    got = [(m.key, v) for v, m in client.get_prefix("p/")]
    assert got == [(b"p/1", b"e"), (b"p/2", b"a"), (b"p/3", b"c")]
    got = [m.key for _, m in client.get_prefix("p/", sort_order="descend")]
    assert got == [b"p/3", b"p/2", b"p/1"]
    got = [m.key for _, m in client.get_prefix("p/", sort_order="ascend", sort_target="value")]
    assert got == [b"p/2", b"p/3", b"p/1"]
    got = [m.key for _, m in client.get_prefix("p/", sort_order="ascend", sort_target="create")]
    assert got == [b"p/3", b"p/1", b"p/2"]
    got = [m.key for _, m in client.get_prefix("p/", keys_only=True)]
    assert got == [b"p/1", b"p/2", b"p/3"]
    keys_only_values = [v for v, _ in client.get_prefix("p/", keys_only=True)]
    assert keys_only_values == [b"", b"", b""]
    assert [m.key for _, m in client.get_all()] == [b"p/1", b"p/2", b"p/3", b"q/1"]
    assert [m.key for _, m in client.get_range("p/2", "q/1")] == [b"p/2", b"p/3"]
    assert list(client.get_prefix("zzz/")) == []


def test_delete_and_delete_prefix(client):
    for k in ["a", "d/1", "d/2", "d/3", "e"]:
        client.put(k, "v-" + k)  # revisions 2..6
    assert client.delete("a") is True
    assert client.delete("a") is False
    assert revision(client) == 7
    resp = client.delete("e", prev_kv=True, return_response=True)
    assert resp.deleted == 1
    assert resp.prev_kvs[0].value == b"v-e"
    assert resp.header.revision == 8
    resp = client.delete_prefix("d/")
    assert resp.deleted == 3
    assert resp.header.revision == 9
    assert list(client.get_all()) == []
    resp = client.delete_prefix("d/")
    assert resp.deleted == 0
    assert resp.header.revision == 9


def test_replace(client):
    client.put("k", "one")
    assert client.replace("k", "one", "two") is True
    assert client.get("k")[0] == b"two"
    assert client.replace("k", "one", "three") is False
    assert client.get("k")[0] == b"two"
    assert client.replace("missing", "", "x") is False
    assert client.get("missing") == (None, None)
    assert client.put_if_not_exists("fresh", "1") is True
    assert client.put_if_not_exists("fresh", "2") is False
    assert client.get("fresh")[0] == b"1"


def test_transaction_branches(client):
    client.put("a", "x")  # 2
    client.put("a", "x")  # 3: version 2, create 2, mod 3
    t = client.transactions
    cases = [
        (t.value("a") == "x", True),
        (t.value("a") != "x", False),
        (t.value("a") > "w", True),
        (t.value("a") < "w", False),
        (t.version("a") == 2, True),
        (t.version("a") > 2, False),
        (t.version("a") < 3, True),
        (t.create("a") == 2, True),
        (t.create("a") > 2, False),
        (t.mod("a") == 3, True),
        (t.mod("a") < 3, False),
        (t.version("missing") == 0, True),
        (t.create("missing") == 0, True),
        (t.mod("missing") > 0, False),
    ]
    for cmp, want in cases:
        ok, responses = client.transaction(compare=[cmp], success=[], failure=[])
        assert ok is want, (cmp.key, cmp.op, cmp.value, want)
        assert responses == []
    assert revision(client) == 3, "empty branches do not write"

    ok, responses = client.transaction(
        compare=[t.value("a") == "x", t.version("a") == 2],
        success=[t.put("s", "yes"), t.get("a"), t.delete("nothing")],
        failure=[t.put("s", "no")],
    )
    assert ok is True
    assert responses[0].response_put.header.revision == 4
    (value, meta), = responses[1]
    assert value == b"x" and meta.mod_revision == 3
    assert responses[2].response_delete_range.deleted == 0
    assert client.get("s")[0] == b"yes"

    ok, responses = client.transaction(
        compare=[t.value("a") == "x", t.mod("a") > 3],
        success=[t.put("s", "yes2")],
        failure=[t.put("s", "no"), t.get("s")],
    )
    assert ok is False
    (value, meta), = responses[1]
    assert value == b"no"
    assert (meta.create_revision, meta.mod_revision, meta.version) == (4, 5, 2)
    assert revision(client) == 5


def test_error_codes(client):
    with pytest.raises(grpc.RpcError) as e:
        client.put("", "v")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "etcdserver: key is not provided"
    client.put("k", "1")
    client.put("k", "2")
    client.put("k", "3")  # revision 4
    client.compact(3)
    for rev, msg in [
        (3, "etcdserver: mvcc: required revision has been compacted"),
        (2, "etcdserver: mvcc: required revision has been compacted"),
        (5, "etcdserver: mvcc: required revision is a future revision"),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            client.compact(rev)
        assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert e.value.details() == msg
    client.compact(4, physical=True)
    assert client.get("k")[0] == b"3"
    with pytest.raises(grpc.RpcError) as e:
        client.put("missing", "v", lease=12345)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == "etcdserver: requested lease not found"


def test_status(client, server):
    st = client.status()
    assert st.version.startswith("3.4.") or st.version.startswith("3.5."), st.version
    assert st.db_size > 0
    assert st.leader is not None
    assert st.leader.name == "n1"
    assert st.raft_index > 0
    assert st.raft_term >= 1
    idx = st.raft_index
    client.put("x", "y")
    assert client.status().raft_index > idx


def test_members(client, server):
    members = list(client.members)
    assert len(members) == 1
    m = members[0]
    assert m.name == "n1"
    assert list(m.peer_urls) == [server.peer_url]
    assert list(m.client_urls) == [server.client_url]
    assert m.id == client.status().leader.id
