//! Runs the `oxcd-bench` binary against a real etcd (`/usr/bin/etcd` or `$OXCD_TEST_ETCD`)
//! and checks its JSON reports. Without an etcd binary it fails, unless `OXCD_ALLOW_SKIP=1`
//! (never in CI) lets it skip.

use std::process::Command;

use oxcd_client::test_util::{etcd_binary, EtcdProcess};
use oxcd_testkit::skip_or_fail;
use serde_json::Value;

fn bench(endpoint: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd-bench"))
        .args(["--endpoints", endpoint, "--json", "--timeout", "60"])
        .args(args)
        .output()
        .expect("run oxcd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "oxcd-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("JSON report")
}

fn assert_sane(r: &Value, workload: &str, total: u64) {
    assert_eq!(r["workload"], workload, "{r}");
    assert_eq!(r["ops"], total, "every op succeeded: {r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    assert_eq!(r["timed_out"], false, "{r}");
    let ops_per_sec = r["ops_per_sec"].as_f64().unwrap();
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!(ops_per_sec > 10.0, "throughput {ops_per_sec}");
    assert!((ops_per_sec * elapsed - total as f64).abs() < 1.0, "{r}");
    let l = &r["latency_ms"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(p("min") > 0.0 && p("min") <= p("p50"), "{l}");
    assert!(
        p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p999"),
        "{l}"
    );
    assert!(p("p999") <= p("max") && p("max") < 60_000.0, "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_range_against_etcd() {
    let Some(bin) = etcd_binary() else {
        skip_or_fail(
            "put_and_range_against_etcd",
            "no etcd binary (/usr/bin/etcd or $OXCD_TEST_ETCD)",
        );
        return;
    };
    let etcd = EtcdProcess::start(&bin).await.expect("start etcd");
    let ep = etcd.endpoint().to_string();
    let run = move |args: Vec<&'static str>| {
        let ep = ep.clone();
        tokio::task::spawn_blocking(move || bench(&ep, &args))
    };

    let put = run(vec![
        "--total",
        "300",
        "--clients",
        "4",
        "--conns",
        "2",
        "put",
        "--key-space-size",
        "100",
    ]);
    assert_sane(&put.await.unwrap(), "put", 300);
    let txn = run(vec!["--total", "100", "put", "--txn"]).await.unwrap();
    assert_sane(&txn, "put-txn", 100);

    let range = run(vec![
        "--total",
        "200",
        "--clients",
        "4",
        "range",
        "--key-space-size",
        "50",
    ]);
    let range = range.await.unwrap();
    assert_sane(&range, "range", 200);
    assert_eq!(range["extra"]["kvs_per_read"], 1.0, "{range}");
    assert_eq!(range["extra"]["preload_errors"], 0, "{range}");

    let prefix = run(vec![
        "--total",
        "100",
        "range",
        "--key-space-size",
        "50",
        "--prefix-keys",
        "10",
        "--consistency",
        "s",
    ]);
    let prefix = prefix.await.unwrap();
    assert_sane(&prefix, "range", 100);
    assert_eq!(prefix["extra"]["kvs_per_read"], 10.0, "{prefix}");

    let stm = run(vec![
        "--total",
        "50",
        "--clients",
        "4",
        "stm",
        "--keys",
        "3",
    ])
    .await
    .unwrap();
    assert_sane(&stm, "stm", 50);
    assert_eq!(stm["extra"]["consistent"], true, "{stm}");

    let watch = run(vec![
        "--total",
        "20",
        "--clients",
        "2",
        "watch",
        "--watchers",
        "6",
        "--streams",
        "2",
    ]);
    let watch = watch.await.unwrap();
    assert_sane(&watch, "watch", 120);
    assert_eq!(watch["extra"]["missing_events"], 0, "{watch}");
}
