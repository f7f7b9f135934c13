"""python-etcd3 0.12 maintenance calls: snapshot (streamed, ending in the sha256 of what
precedes it, a multiple of 512 bytes before it as etcd's clients require), defragment, hash,
and the NOSPACE alarm (create_alarm refuses writes, disarm_alarm lets them through)."""

import hashlib
import io

import grpc
import pytest


def test_snapshot_is_checksummed_and_holds_the_data(client):
    for i in range(40):
        client.put("snap/%d" % i, "v" * 1000)
    buf = io.BytesIO()
    client.snapshot(buf)
    data = buf.getvalue()
    assert len(data) > 40 * 1000, len(data)
    assert len(data) % 512 == 32, len(data)
    body, trailer = data[:-32], data[-32:]
    assert hashlib.sha256(body).digest() == trailer
    # The values are in the file (neither format compresses them).
    assert body.count(b"v" * 1000) >= 40


def test_defragment_keeps_data_and_hash_is_stable(client):
    for i in range(30):
        client.put("d/%d" % i, "x" * 500)
    for i in range(20):
        client.delete("d/%d" % i)
    h1 = client.hash()
    assert h1 == client.hash()
    client.defragment()
    assert client.hash() == h1, "defragment changed the hash of the same revision"
    assert len(list(client.get_prefix("d/"))) == 10
    client.put("d/after", "y")
    assert client.get("d/after")[0] == b"y"


def test_nospace_alarm_refuses_writes_until_disarmed(client):
    client.put("before", "1")
    alarms = client.create_alarm()
    assert len(alarms) == 1
    listed = list(client.list_alarms())
    assert len(listed) == 1 and listed[0].member_id == 0, listed
    with pytest.raises(grpc.RpcError) as e:
        client.put("during", "2")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    assert e.value.details() == "etcdserver: mvcc: database space exceeded"
    # Reads and deletes still work under NOSPACE.
    assert client.get("before")[0] == b"1"
    assert client.delete("before")
    client.disarm_alarm()
    assert list(client.list_alarms()) == []
    client.put("after", "3")
    assert client.get("after")[0] == b"3"
    assert client.get("during")[0] is None
