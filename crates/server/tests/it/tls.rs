//! TLS end to end: `https://` client URLs with etcd's flags, client-certificate auth,
//! peer mTLS with an allowed CN, and server-certificate rotation, driven by `etcdctl`
//! (`--cacert/--cert/--key`) and the `etcd-client` crate. Client-side tests also run
//! against Debian's etcd (`OXCD_TEST_SERVER=etcd`).
//!
//! Invariants: every certificate and key is made here with rcgen in a temp dir (none is
//! checked in); servers listen on loopback with free ports; only processes started here
//! are signalled, by PID; every wait is bounded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use oxcd_testkit::process::Proc;
use oxcd_testkit::{free_ports, run_with_timeout, CmdOutput, ServerKind};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

const READY: Duration = Duration::from_secs(30);

/// A test CA whose leaves carry `127.0.0.1`/`localhost` SANs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// Writes `<name>.crt`/`<name>.key` for CN `cn` in `dir`; returns the paths.
    fn leaf(&self, dir: &Path, name: &str, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let c = write(dir, &format!("{name}.crt"), &cert.pem());
        let k = write(dir, &format!("{name}.key"), &key.serialize_pem());
        (c, k)
    }

    fn write_ca(&self, dir: &Path, name: &str) -> String {
        write(dir, name, &self.pem)
    }
}

fn write(dir: &Path, name: &str, data: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

/// One member process, with its own command line.
struct Member {
    proc: Proc,
    name: String,
    client: String,
    args: Vec<String>,
}

impl Member {
    fn spawn(&mut self) {
        let bin = ServerKind::from_env().binary(Some(Path::new(env!("CARGO_BIN_EXE_oxcd"))));
        let mut cmd = Command::new(bin);
        cmd.args(&self.args);
        self.proc.spawn(cmd, &self.name).unwrap();
    }
}

/// etcdctl over TLS (`tls` = `--cacert`, `--cert`, `--key` arguments) at `endpoint`.
fn etcdctl(endpoint: &str, tls: &[String], args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(oxcd_testkit::etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=10s")
        .args(tls)
        .args(args);
    run_with_timeout(cmd, None, Duration::from_secs(30))
}

fn tls_args(ca: &str, cert_key: Option<&(String, String)>) -> Vec<String> {
    let mut v = vec![format!("--cacert={ca}")];
    if let Some((c, k)) = cert_key {
        v.push(format!("--cert={c}"));
        v.push(format!("--key={k}"));
    }
    v
}

/// Polls `etcdctl endpoint health` until it succeeds; panics with the log otherwise.
fn wait_healthy(m: &Member, tls: &[String]) {
    let deadline = Instant::now() + READY;
    loop {
        let out = etcdctl(&m.client, tls, &["endpoint", "health"]);
        if out.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not healthy: {}\n--- log ---\n{}",
            m.name,
            out.err(),
            m.proc.tail(4000)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A single member serving `https://` with the given extra flags.
fn single(dir: &Path, extra: &[String]) -> Member {
    let p = free_ports(2);
    let client = format!("https://127.0.0.1:{}", p[0]);
    let peer = format!("http://127.0.0.1:{}", p[1]);
    let mut args: Vec<String> = [
        "--name",
        "s1",
        "--data-dir",
        &dir.join("s1.data").display().to_string(),
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("s1={peer}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend_from_slice(extra);
    let mut m = Member {
        proc: Proc::new(dir.join("s1.log")),
        name: "s1".into(),
        client,
        args,
    };
    m.spawn();
    m
}

#[test]
fn etcdctl_and_etcd_client_over_mtls_and_no_cert_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("oxcd test CA");
    let ca_file = ca.write_ca(d, "ca.crt");
    let (sc, sk) = ca.leaf(d, "server", "server");
    let client = ca.leaf(d, "client", "alice");
    let m = single(
        d,
        &[
            format!("--cert-file={sc}"),
            format!("--key-file={sk}"),
            format!("--trusted-ca-file={ca_file}"),
            "--client-cert-auth".into(),
        ],
    );
    let tls = tls_args(&ca_file, Some(&client));
    wait_healthy(&m, &tls);

    let put = etcdctl(&m.client, &tls, &["put", "tls-key", "over-tls"]);
    assert!(put.success(), "put: {}", put.err());
    let get = etcdctl(&m.client, &tls, &["get", "tls-key", "--print-value-only"]);
    assert_eq!(get.ok().trim(), "over-tls");

    // No client certificate: the handshake is refused, the request never runs.
    let no_cert = etcdctl(&m.client, &tls_args(&ca_file, None), &["get", "tls-key"]);
    assert!(
        !no_cert.success(),
        "a client without a certificate was served"
    );
    // A certificate from another CA is refused as well.
    let other = Ca::new("other CA").leaf(d, "stranger", "mallory");
    let wrong_ca = etcdctl(&m.client, &tls_args(&ca_file, Some(&other)), &["get", "k"]);
    assert!(
        !wrong_ca.success(),
        "a certificate from an unknown CA was served"
    );
    // Plaintext on the TLS port gets nothing.
    let plain = etcdctl(&m.client.replace("https", "http"), &[], &["get", "k"]);
    assert!(!plain.success(), "plaintext was served on a TLS port");

    // The etcd-client crate with TLS (tonic's rustls).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let read = |p: &str| std::fs::read(p).unwrap();
        let opts = etcd_client::ConnectOptions::new()
            .with_timeout(Duration::from_secs(10))
            .with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read(&ca_file)))
                    .identity(etcd_client::Identity::from_pem(
                        read(&client.0),
                        read(&client.1),
                    )),
            );
        let mut c = tokio::time::timeout(
            Duration::from_secs(15),
            etcd_client::Client::connect([m.client.clone()], Some(opts)),
        )
        .await
        .expect("connect timed out")
        .expect("connect");
        c.put("crate-key", "crate-value", None).await.unwrap();
        let r = c.get("tls-key", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"over-tls");
    });
    let get = etcdctl(&m.client, &tls, &["get", "crate-key", "--print-value-only"]);
    assert_eq!(get.ok().trim(), "crate-value");
}

#[test]
fn server_certificate_rotation_keeps_clients_working() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("oxcd test CA");
    let ca_file = ca.write_ca(d, "ca.crt");
    let (sc, sk) = ca.leaf(d, "server", "server-v1");
    let m = single(
        d,
        &[format!("--cert-file={sc}"), format!("--key-file={sk}")],
    );
    let tls = tls_args(&ca_file, None);
    wait_healthy(&m, &tls);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = etcd_client::ConnectOptions::new().with_tls(
            etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(
                std::fs::read(&ca_file).unwrap(),
            )),
        );
        let mut c = etcd_client::Client::connect([m.client.clone()], Some(opts))
            .await
            .unwrap();
        c.put("before", "1", None).await.unwrap();
        // Rotate: a new certificate and key from the same CA, written in place.
        let (nc, nk) = ca.leaf(d, "server-new", "server-v2");
        std::fs::copy(&nk, &sk).unwrap();
        std::fs::copy(&nc, &sc).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The established connection keeps working.
        c.put("after", "2", None).await.unwrap();
    });
    // New connections get the new certificate and still verify against the CA.
    let get = etcdctl(&m.client, &tls, &["get", "after", "--print-value-only"]);
    assert_eq!(get.ok().trim(), "2", "{}", get.err());
    assert!(
        served_subject(&m.client).contains("server-v2"),
        "the rotated certificate is not served: {}",
        served_subject(&m.client)
    );
}

/// The subject of the certificate the server at `url` presents (via `openssl s_client`).
fn served_subject(url: &str) -> String {
    let addr = url.trim_start_matches("https://");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "openssl s_client -connect {addr} </dev/null 2>/dev/null | openssl x509 -noout -subject"
    ));
    run_with_timeout(cmd, None, Duration::from_secs(15)).stdout
}

/// A 3-member cluster over peer mTLS (https peer URLs, given certificates, allowed CN
/// `member`); `cns[i]` is member i's certificate CN.
fn peer_tls_cluster(d: &Path, ca: &Ca, cns: [&str; 3]) -> Vec<Member> {
    let ca_file = ca.write_ca(d, "peer-ca.crt");
    let ports = free_ports(6);
    let names = ["m1", "m2", "m3"];
    let peer = |i: usize| format!("https://127.0.0.1:{}", ports[2 * i + 1]);
    let initial: Vec<String> = (0..3)
        .map(|i| format!("{}={}", names[i], peer(i)))
        .collect();
    let mut members = Vec::new();
    for i in 0..3 {
        let (c, k) = ca.leaf(d, &format!("peer-{}", names[i]), cns[i]);
        let client = format!("http://127.0.0.1:{}", ports[2 * i]);
        let args: Vec<String> = vec![
            format!("--name={}", names[i]),
            format!("--data-dir={}", d.join(names[i]).display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={}", peer(i)),
            format!("--initial-advertise-peer-urls={}", peer(i)),
            format!("--initial-cluster={}", initial.join(",")),
            "--initial-cluster-token=tls-cluster".into(),
            format!("--peer-cert-file={c}"),
            format!("--peer-key-file={k}"),
            format!("--peer-trusted-ca-file={ca_file}"),
            "--peer-client-cert-auth".into(),
            "--peer-cert-allowed-cn=member".into(),
            "--heartbeat-interval=50".into(),
            "--election-timeout=500".into(),
        ];
        let mut m = Member {
            proc: Proc::new(d.join(format!("{}.log", names[i]))),
            name: names[i].into(),
            client,
            args,
        };
        m.spawn();
        members.push(m);
    }
    members
}

fn leader_index(members: &[Member]) -> Option<usize> {
    for (i, m) in members.iter().enumerate() {
        let out = etcdctl(&m.client, &[], &["endpoint", "status", "-w", "json"]);
        if !out.success() {
            continue;
        }
        let v = out.json();
        let st = &v[0]["Status"];
        if st["leader"].as_u64().is_some() && st["leader"] == st["header"]["member_id"] {
            return Some(i);
        }
    }
    None
}

#[test]
fn peer_mtls_cluster_survives_leader_kill() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let mut members = peer_tls_cluster(dir.path(), &ca, ["member"; 3]);
    for m in &members {
        wait_healthy(m, &[]);
    }
    let put = etcdctl(&members[0].client, &[], &["put", "peer-tls", "v1"]);
    assert!(put.success(), "put: {}", put.err());
    let deadline = Instant::now() + READY;
    let leader = loop {
        if let Some(l) = leader_index(&members) {
            break l;
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(200));
    };
    members[leader].proc.kill9();
    let other = (leader + 1) % 3;
    let deadline = Instant::now() + READY;
    loop {
        let out = etcdctl(&members[other].client, &[], &["put", "peer-tls", "v2"]);
        if out.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no progress after leader kill: {}\n{}",
            out.err(),
            members[other].proc.tail(4000)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let third = (leader + 2) % 3;
    let get = etcdctl(
        &members[third].client,
        &[],
        &["get", "peer-tls", "--print-value-only"],
    );
    assert_eq!(get.ok().trim(), "v2", "{}", get.err());
}

#[test]
fn member_outside_allowed_cn_never_joins() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("peer CA");
    let members = peer_tls_cluster(dir.path(), &ca, ["member", "member", "intruder"]);
    // The two allowed members form a quorum and serve.
    for m in &members[..2] {
        wait_healthy(m, &[]);
    }
    let put = etcdctl(&members[0].client, &[], &["put", "k", "v"]);
    assert!(put.success(), "put: {}", put.err());
    // The intruder never catches up: it cannot get the value (no leader reachable).
    std::thread::sleep(Duration::from_secs(3));
    let get = etcdctl(
        &members[2].client,
        &[],
        &["get", "k", "--print-value-only", "--command-timeout=3s"],
    );
    assert!(
        !get.success() || get.stdout.trim() != "v",
        "a member with a refused CN got the data"
    );
    let refused = members[..2].iter().any(|m| {
        m.proc.log().contains("CN \\\"intruder\\\" is not allowed")
            || m.proc.log().contains("CN \"intruder\" is not allowed")
            || m.proc.log().contains("rejected connection")
    });
    assert!(refused, "no member logged the refusal");
}
