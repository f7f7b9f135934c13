"""pytest fixtures: start a fresh single-member server (oxcd or etcd) per test.

Server choice: OXCD_TEST_SERVER=oxcd|etcd (default oxcd). The oxcd binary comes from
OXCD_BIN (default <repo>/target/debug/oxcd); etcd from OXCD_ETCD_BIN (default /usr/bin/etcd).
Every server listens on 127.0.0.1 only and is killed by PID when its test ends.

Skips: a test that cannot run calls skip_or_fail(); it skips only with OXCD_ALLOW_SKIP=1 and
never in CI (CI=true), otherwise it fails.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import etcd3

ETCDCTL = os.environ.get("OXCD_ETCDCTL_BIN", "/usr/bin/etcdctl")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 20.0


def skip_allowed():
    ci = os.environ.get("CI", "") in ("true", "1")
    return os.environ.get("OXCD_ALLOW_SKIP") == "1" and not ci


def skip_or_fail(reason):
    """Skips the calling test only when skipping is allowed (see the module doc), else fails."""
    if skip_allowed():
        pytest.skip(reason + " (OXCD_ALLOW_SKIP=1)")
    pytest.fail(reason + " (set OXCD_ALLOW_SKIP=1 to skip outside CI)", pytrace=False)


def server_kind():
    kind = os.environ.get("OXCD_TEST_SERVER", "oxcd") or "oxcd"
    if kind not in ("oxcd", "etcd"):
        raise ValueError("OXCD_TEST_SERVER must be oxcd or etcd, not %r" % kind)
    return kind


def server_binary(kind):
    if kind == "etcd":
        return os.environ.get("OXCD_ETCD_BIN", "/usr/bin/etcd")
    return os.environ.get("OXCD_BIN", os.path.join(REPO, "target", "debug", "oxcd"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d):
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI), in `d`.
    Returns (ca, cert, key) paths."""
    ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key, csr = (os.path.join(d, n) for n in ("server.crt", "server.key", "server.csr"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (
        ["openssl", "req", "-x509"] + ec + ["-keyout", ca_key, "-out", ca, "-days", "2",
                                            "-subj", "/CN=oxcd-pytest-ca"],
        ["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    return ca, crt, key


def make_client_cert(d, cn):
    """A client certificate with common name `cn`, signed by the CA make_certs left in `d`.
    Returns (cert, key) paths."""
    ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    crt, key, csr = (os.path.join(d, "client-%s.%s" % (cn, n)) for n in ("crt", "key", "csr"))
    ext = os.path.join(d, "client-ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for cmd in (
        ["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=" + cn],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    return crt, key


def etcdctl(server, *args, user=None, cert=None):
    """etcdctl against `server` (its CA when it has TLS; `user` "name:password"; `cert` a
    (certificate, key) pair); fails the test unless it succeeds; returns stdout."""
    cmd = [ETCDCTL, "--endpoints", server.client_url, "--command-timeout=10s"]
    if server.ca:
        cmd += ["--cacert", server.ca]
    if cert:
        cmd += ["--cert", cert[0], "--key", cert[1]]
    if user:
        cmd += ["--user", user]
    out = subprocess.run(cmd + list(args), env=dict(os.environ, ETCDCTL_API="3"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


class Server:
    def __init__(self, extra_args=(), tls=False, client_cert_auth=False):
        self.kind = server_kind()
        self.binary = server_binary(self.kind)
        self.dir = tempfile.mkdtemp(prefix="oxcd-pytest-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "server.log")
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self.extra_args = list(extra_args)
        self.ca = None
        self.client_cert = None
        if tls or client_cert_auth:
            self.ca, crt, key = make_certs(self.dir)
            self.extra_args += ["--cert-file", crt, "--key-file", key]
        if client_cert_auth:
            # The readiness probe and the fixture clients present this one (CN "root").
            self.client_cert = make_client_cert(self.dir, "root")
            self.extra_args += ["--trusted-ca-file", self.ca, "--client-cert-auth"]
        self.proc = None

    @property
    def client_url(self):
        scheme = "https" if self.ca else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.client_port)

    def client(self, **kw):
        """An etcd3 client for this server (TLS when the server has it; with client
        certificate auth, the "root" certificate unless cert_cert/cert_key are given)."""
        if self.client_cert and "cert_cert" not in kw:
            kw["cert_cert"], kw["cert_key"] = self.client_cert
        return etcd3.client("127.0.0.1", self.client_port, ca_cert=self.ca, **kw)

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def start(self):
        c, p = self.client_url, self.peer_url
        args = [
            self.binary,
            "--name", "n1",
            "--data-dir", self.data_dir,
            "--listen-client-urls", c,
            "--advertise-client-urls", c,
            "--listen-peer-urls", p,
            "--initial-advertise-peer-urls", p,
            "--initial-cluster", "n1=" + p,
        ] + self.extra_args
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "%s exited early with %s\n%s" % (self.kind, self.proc.returncode, self.log())
                )
            try:
                c = self.client(timeout=2)
                try:
                    st = c.status()
                    if st.leader is not None:
                        c.get("oxcd-pytest-readiness-probe")
                        return
                    last = "no leader yet"
                finally:
                    c.close()
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %ss (%s)\n%s" % (self.kind, READY_TIMEOUT, last, self.log()))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-20000:]
        except OSError:
            return ""

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server(request):
    s = Server()
    try:
        s.start()
    except Exception:
        s.cleanup()
        raise
    yield s
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print("--- %s server log (tail) ---\n%s" % (s.kind, s.log()))
    s.cleanup()


@pytest.fixture
def client(server):
    c = etcd3.client("127.0.0.1", server.client_port, timeout=10)
    yield c
    c.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_sessionfinish(session, exitstatus):
    """Backstop for the skip policy: any skipped test fails the run unless skipping is allowed."""
    if skip_allowed():
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = tr.stats.get("skipped", []) if tr is not None else []
    if skipped:
        print("\n%d test(s) skipped without OXCD_ALLOW_SKIP=1 (or in CI): failing the run" % len(skipped))
        session.exitstatus = 1
