"""python-etcd3 0.12 over mutual TLS (ca_cert, cert_cert, cert_key) against a server with
--client-cert-auth: a client with a certificate signed by the trusted CA is served; one
without a certificate, or with one from another CA, is refused in the handshake; with auth
enabled the certificate's common name is the user (no password), so it gets exactly its
roles' permissions."""

import tempfile

import grpc
import pytest

import etcd3
from conftest import Server, etcdctl, make_certs, make_client_cert


@pytest.fixture
def mtls_server():
    s = Server(client_cert_auth=True)
    try:
        s.start()
    except Exception:
        s.cleanup()
        raise
    try:
        yield s
    finally:
        s.cleanup()


def ctl(server, *args):
    """etcdctl with the "root" client certificate."""
    return etcdctl(server, *args, cert=server.client_cert)


def refused(client):
    with pytest.raises(Exception) as e:
        client.get("k")
    err = e.value
    # python-etcd3 turns UNAVAILABLE into ConnectionFailedError; a raw RpcError is fine too.
    ok = isinstance(err, etcd3.exceptions.ConnectionFailedError) or (
        isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.UNAVAILABLE)
    assert ok, repr(err)


def test_a_certificate_from_the_trusted_ca_is_required(mtls_server):
    c = mtls_server.client(timeout=10)
    try:
        c.put("k", "v")
        assert c.get("k")[0] == b"v"
    finally:
        c.close()

    bare = etcd3.client("127.0.0.1", mtls_server.client_port, ca_cert=mtls_server.ca, timeout=5)
    try:
        refused(bare)
    finally:
        bare.close()

    other = tempfile.mkdtemp(prefix="oxcd-pytest-otherca-")
    make_certs(other)
    cert, key = make_client_cert(other, "mallory")
    foreign = etcd3.client("127.0.0.1", mtls_server.client_port, ca_cert=mtls_server.ca,
                           cert_cert=cert, cert_key=key, timeout=5)
    try:
        refused(foreign)
    finally:
        foreign.close()

    # The server kept serving the good client after the refused handshakes.
    c = mtls_server.client(timeout=10)
    try:
        assert c.get("k")[0] == b"v"
    finally:
        c.close()


def test_the_common_name_is_the_user_when_auth_is_on(mtls_server):
    ctl(mtls_server, "user", "add", "root:rootpw")
    ctl(mtls_server, "role", "add", "root")
    ctl(mtls_server, "user", "grant-role", "root", "root")
    ctl(mtls_server, "user", "add", "alice:alicepw")
    ctl(mtls_server, "role", "add", "app")
    ctl(mtls_server, "role", "grant-permission", "app", "--prefix=true", "readwrite", "/app/")
    ctl(mtls_server, "user", "grant-role", "alice", "app")
    assert "Authentication Enabled" in ctl(mtls_server, "auth", "enable")

    cert, key = make_client_cert(mtls_server.dir, "alice")
    alice = mtls_server.client(timeout=10, cert_cert=cert, cert_key=key)
    try:
        alice.put("/app/x", "1")
        assert alice.get("/app/x")[0] == b"1"
        with pytest.raises(grpc.RpcError) as e:
            alice.put("/other", "2")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value
    finally:
        alice.close()

    root = mtls_server.client(timeout=10)  # CN "root"
    try:
        root.put("/other", "3")
        assert root.get("/other")[0] == b"3"
    finally:
        root.close()
