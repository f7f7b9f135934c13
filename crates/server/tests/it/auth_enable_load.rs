//! Enabling auth on a running 3-member cluster under write load loses no write: writers
//! without credentials put distinct keys through every member while `auth enable` runs;
//! each put is either acknowledged (and then readable, with its value, on every member) or
//! refused with etcd's "user name is empty" (and then absent) — none is half-applied. After
//! the switch an authenticated writer goes on. Same assertions against etcd 3.4.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::PutRequest;

use crate::cluster_harness::*;

/// Outcome of one put.
#[derive(Debug, PartialEq)]
enum Put {
    Acked,
    Refused,
    Unknown,
}

fn writer(
    url: String,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, Put)>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let ch = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .connect()
                .await
                .expect("connect");
            let mut kv = KvClient::new(ch);
            let mut out = Vec::new();
            for i in 0..100_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let key = format!("{prefix}{i:06}");
                let r = kv
                    .put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: key.clone().into_bytes(),
                        ..Default::default()
                    })
                    .await;
                let outcome = match r {
                    Ok(_) => Put::Acked,
                    Err(st)
                        if st.code() == tonic::Code::InvalidArgument
                            && st.message() == "etcdserver: user name is empty" =>
                    {
                        Put::Refused
                    }
                    Err(_) => Put::Unknown,
                };
                let refused = outcome == Put::Refused;
                out.push((key, outcome));
                if refused {
                    // Auth is on: one refusal per writer is enough.
                    break;
                }
            }
            out
        })
    })
}

#[test]
fn enabling_auth_under_load_loses_no_write() {
    let _g = serial();
    let mut c = Cluster::start("authload", Opts::new(3));
    c.wait_leader(&[0, 1, 2], WAIT);
    let eps: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();
    let ctl = |args: &[&str]| {
        let out = etcdctl_at(&eps, args, None);
        assert!(out.success(), "etcdctl {args:?}: {out:#?}");
        out.stdout
    };
    ctl(&["user", "add", "root:rootpw"]);
    ctl(&["role", "add", "root"]);
    ctl(&["user", "grant-role", "root", "root"]);
    ctl(&["user", "add", "app:apppw"]);
    ctl(&["role", "add", "app"]);
    ctl(&[
        "role",
        "grant-permission",
        "app",
        "--prefix=true",
        "readwrite",
        "load/",
    ]);
    ctl(&["user", "grant-role", "app", "app"]);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = eps
        .iter()
        .enumerate()
        .map(|(i, url)| writer(url.clone(), format!("load/w{i}/"), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    assert!(ctl(&["auth", "enable"]).contains("Authentication Enabled"));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    let results: Vec<(String, Put)> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    let acked: Vec<&String> = results
        .iter()
        .filter(|(_, o)| *o == Put::Acked)
        .map(|(k, _)| k)
        .collect();
    let refused: Vec<&String> = results
        .iter()
        .filter(|(_, o)| *o == Put::Refused)
        .map(|(k, _)| k)
        .collect();
    assert!(
        acked.len() >= 30,
        "too little load before the switch: {}",
        acked.len()
    );
    assert_eq!(
        refused.len(),
        3,
        "every writer must have met the switch: {results:?}"
    );

    // An authenticated writer after the switch.
    let out = etcdctl_at(
        &eps,
        &["--user", "app:apppw", "put", "load/after", "ok"],
        None,
    );
    assert!(out.success(), "{out:#?}");

    // Every member has exactly the acknowledged writes (linearizable reads).
    for m in &c.members {
        let eps = vec![m.client_url()];
        let out = etcdctl_at(
            &eps,
            &[
                "--user",
                "root:rootpw",
                "get",
                "load/w",
                "--prefix",
                "--keys-only",
            ],
            None,
        );
        let mut keys: Vec<String> = out
            .ok()
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        keys.sort();
        let mut want: Vec<String> = acked.iter().map(|k| k.to_string()).collect();
        // A put whose outcome the writer could not learn may or may not be there.
        let unknown: Vec<&String> = results
            .iter()
            .filter(|(_, o)| *o == Put::Unknown)
            .map(|(k, _)| k)
            .collect();
        keys.retain(|k| !unknown.contains(&k));
        want.sort();
        assert_eq!(
            keys, want,
            "{}: keys differ from the acknowledged writes",
            m.name
        );
        for k in &refused {
            assert!(!keys.contains(k), "{}: refused {k} was applied", m.name);
        }
    }
    let anon = etcdctl_at(&eps, &["get", "load/after"], None);
    assert!(
        anon.stderr.contains("user name is empty"),
        "an anonymous read passed with auth on: {anon:#?}"
    );
}
