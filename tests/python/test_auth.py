"""python-etcd3 0.12 with user and password against a server with auth enabled, over TLS
(grpcio sends python-etcd3's token call credentials only on a secure channel): users and
roles are set up with etcdctl (python-etcd3 has no user/role API), then etcd3.client(user=,
password=, ca_cert=) reads and writes inside its permissions and is refused outside them; a
wrong password is refused at connect; an anonymous client is refused."""

import grpc
import pytest

from conftest import Server, etcdctl


def ctl(server, *args, user=None):
    return etcdctl(server, *args, user=user)


@pytest.fixture
def auth_server():
    server = Server(tls=True)
    try:
        server.start()
    except Exception:
        server.cleanup()
        raise
    try:
        yield setup_auth(server)
    finally:
        server.cleanup()


def setup_auth(server):
    ctl(server, "user", "add", "root:rootpw")
    ctl(server, "role", "add", "root")
    ctl(server, "user", "grant-role", "root", "root")
    ctl(server, "user", "add", "alice:alicepw")
    ctl(server, "role", "add", "app")
    ctl(server, "role", "grant-permission", "app", "--prefix=true", "readwrite", "/app/")
    ctl(server, "role", "grant-permission", "app", "read", "/shared")
    ctl(server, "user", "grant-role", "alice", "app")
    assert "Authentication Enabled" in ctl(server, "auth", "enable")
    return server


def denied(e):
    return isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.PERMISSION_DENIED


def test_user_reads_and_writes_inside_its_permissions_only(auth_server):
    ctl(auth_server, "put", "/shared", "s", user="root:rootpw")
    c = auth_server.client(timeout=10,
                     user="alice", password="alicepw")
    try:
        c.put("/app/a", "1")
        value, meta = c.get("/app/a")
        assert value == b"1"
        assert [m.key for _, m in c.get_prefix("/app/")] == [b"/app/a"]
        assert c.get("/shared")[0] == b"s"

        with pytest.raises(grpc.RpcError) as e:
            c.put("/shared", "x")
        assert denied(e.value), e.value
        with pytest.raises(grpc.RpcError) as e:
            c.get("/other")
        assert denied(e.value), e.value
        # A txn with a forbidden put in its failure branch is refused as a whole.
        with pytest.raises(grpc.RpcError) as e:
            c.transaction(
                compare=[c.transactions.value("/app/a") == "1"],
                success=[c.transactions.put("/app/b", "2")],
                failure=[c.transactions.put("/other", "3")],
            )
        assert denied(e.value), e.value
        assert c.get("/app/b")[0] is None
    finally:
        c.close()
    # What alice could not write is not there.
    out = ctl(auth_server, "get", "/other", user="root:rootpw")
    assert out.strip() == ""
    assert ctl(auth_server, "get", "/shared", "--print-value-only", user="root:rootpw").strip() == "s"


def test_wrong_password_and_anonymous_are_refused(auth_server):
    with pytest.raises(grpc.RpcError) as e:
        auth_server.client(timeout=10,
                     user="alice", password="wrong")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert "authentication failed, invalid user ID or password" in e.value.details()

    anon = auth_server.client(timeout=10)
    try:
        with pytest.raises(grpc.RpcError) as e:
            anon.get("/app/a")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        assert e.value.details() == "etcdserver: user name is empty"
    finally:
        anon.close()


def test_root_manages_and_disables_auth(auth_server):
    root = auth_server.client(timeout=10,
                        user="root", password="rootpw")
    try:
        root.put("/anything", "v")
        assert root.get("/anything")[0] == b"v"
    finally:
        root.close()
    assert "Authentication Disabled" in ctl(auth_server, "auth", "disable", user="root:rootpw")
    anon = auth_server.client(timeout=10)
    try:
        assert anon.get("/anything")[0] == b"v"
    finally:
        anon.close()
