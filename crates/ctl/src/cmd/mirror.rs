//! make-mirror: copy a key range of the source cluster to a destination cluster, then
//! follow the source's watch, as etcdctl 3.4's `make-mirror` does.
//!
//! Invariants:
//! - The initial copy reads one revision (the source's current one) in batches, and the
//!   watch starts right after it, so no change is lost or applied twice.
//! - Events of one source revision are applied to the destination in one transaction, in
//!   order; `--prefix P` keys are renamed by replacing the first `P` with the destination
//!   prefix (`--dest-prefix`, by default `P`; `--no-dest-prefix`: the root).
//! - The count of keys mirrored so far is printed every `--report-interval` (30 s, as
//!   etcdctl; the flag is hidden); the command runs until it fails or is interrupted.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use oxcd_client::{
    pb, prefix_end, DeleteOptions, EventType, Op, PutOptions, TlsOptions, WatchOptions,
};

use super::{bad_args, Ctx};
use crate::cli::MirrorArgs;
use crate::fmt::parse_go_duration;
use crate::{exit, CtlError, CtlResult};

/// Source keys are read in batches of this many (etcd's mirror `batchLimit`).
const BATCH: i64 = 1000;

fn rename(key: &[u8], from: &str, to: &str) -> Vec<u8> {
    let k = String::from_utf8_lossy(key);
    if from.is_empty() {
        return format!("{to}{k}").into_bytes();
    }
    k.replacen(from, to, 1).into_bytes()
}

pub async fn make_mirror(ctx: &Ctx, a: MirrorArgs) -> CtlResult {
    let [dest] = a.dest.as_slice() else {
        return Err(bad_args("make-mirror takes one destination argument"));
    };
    let every = parse_go_duration(&a.report_interval)
        .map_err(|e| bad_args(format!("--report-interval: {e}")))?;
    let tls_files = a.dest_cacert.is_some() || a.dest_cert.is_some() || a.dest_key.is_some();
    let tls =
        (tls_files || dest.starts_with("https://") || !a.dest_insecure_transport).then(|| {
            TlsOptions {
                ca_file: a.dest_cacert.clone().map(Into::into),
                cert_file: a.dest_cert.clone().map(Into::into),
                key_file: a.dest_key.clone().map(Into::into),
                domain: None,
            }
        });
    let dc = ctx
        .client_with(std::slice::from_ref(dest), tls, None)
        .await?;
    let c = ctx.client().await?;

    let total = Arc::new(AtomicI64::new(0));
    let reporter = {
        let total = total.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                println!("{}", total.load(Ordering::Relaxed));
            }
        })
    };
    let r = mirror(&c, &dc, &a, &total).await;
    reporter.abort();
    r
}

async fn mirror(
    c: &oxcd_client::Client,
    dc: &oxcd_client::Client,
    a: &MirrorArgs,
    total: &AtomicI64,
) -> CtlResult {
    // etcd's syncer: the revision of a read of "foo" is the base revision.
    let rev = c
        .range_raw(pb::RangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        })
        .await?
        .header
        .map_or(0, |h| h.revision);
    if a.no_dest_prefix && !a.dest_prefix.is_empty() {
        return Err(bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let dest_prefix = if a.no_dest_prefix {
        String::new()
    } else if a.dest_prefix.is_empty() {
        a.prefix.clone()
    } else {
        a.dest_prefix.clone()
    };
    let to = |k: &[u8]| {
        if a.prefix.is_empty() && dest_prefix.is_empty() {
            k.to_vec()
        } else {
            rename(k, &a.prefix, &dest_prefix)
        }
    };
    // The base: every key at `rev`, in batches.
    let (mut key, end) = if a.prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (
            a.prefix.clone().into_bytes(),
            prefix_end(a.prefix.as_bytes()),
        )
    };
    loop {
        let r = c
            .range_raw(pb::RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                limit: BATCH,
                revision: rev,
                ..Default::default()
            })
            .await?;
        for kv in &r.kvs {
            dc.put(to(&kv.key), kv.value.clone(), &PutOptions::default())
                .await?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match (r.more, r.kvs.last()) {
            (true, Some(last)) => {
                key = last.key.clone();
                key.push(0);
            }
            _ => break,
        }
    }
    // Then every change after it.
    let opts = WatchOptions {
        prefix: true,
        start_revision: rev + 1,
        ..Default::default()
    };
    let wkey = if a.prefix.is_empty() {
        // etcd: an empty prefix watches every key.
        WatchOptions {
            range_end: Some(vec![0]),
            ..opts
        }
    } else {
        opts
    };
    let (_w, mut stream) = c.watch(key_or_root(&a.prefix), &wkey).await?;
    while let Some(resp) = stream.next().await {
        let resp = resp?;
        if resp.compact_revision != 0 {
            return Err(CtlError::new(
                exit::ERROR,
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        let mut ops = Vec::new();
        let mut last_rev = 0;
        for ev in &resp.events {
            let kv = ev.kv.clone().unwrap_or_default();
            if last_rev != 0 && kv.mod_revision > last_rev {
                commit(dc, std::mem::take(&mut ops)).await?;
            }
            last_rev = kv.mod_revision;
            if ev.r#type == EventType::Delete as i32 {
                ops.push(Op::delete(to(&kv.key), &DeleteOptions::default()));
            } else {
                ops.push(Op::put(to(&kv.key), kv.value, &PutOptions::default()));
            }
            total.fetch_add(1, Ordering::Relaxed);
        }
        if !ops.is_empty() {
            commit(dc, ops).await?;
        }
    }
    Err(CtlError::new(
        exit::ERROR,
        "make-mirror: the source's watch ended",
    ))
}

fn key_or_root(prefix: &str) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    }
}

async fn commit(dc: &oxcd_client::Client, ops: Vec<pb::RequestOp>) -> CtlResult {
    dc.txn_raw(pb::TxnRequest {
        success: ops,
        ..Default::default()
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rename;

    #[test]
    fn renames_like_go_strings_replace_once() {
        assert_eq!(rename(b"m/1", "m/", "e/"), b"e/1");
        assert_eq!(rename(b"m/m/1", "m/", "e/"), b"e/m/1");
        assert_eq!(rename(b"m/1", "m/", ""), b"1");
        assert_eq!(rename(b"k", "", "d/"), b"d/k");
    }
}
