//! lock and elect over etcd's Lock and Election services, holding a session lease.
//!
//! Invariant: the session's lease is revoked on every exit path this process controls
//! (command finished, interrupt), so the lock or candidacy never outlives oxcdctl by more
//! than the lease TTL.

use futures::StreamExt;
use oxcd_client::concurrency::{Session, SessionOptions};

use super::kv::simple_kv;
use super::Ctx;
use crate::cli::{ElectArgs, LockArgs};
use crate::{exit, CtlError, CtlResult};

pub async fn lock(ctx: &Ctx, a: LockArgs) -> CtlResult {
    let c = ctx.client().await?;
    let s = Session::new(
        &c,
        SessionOptions {
            ttl: a.ttl,
            lease: None,
        },
    )
    .await?;
    let r = tokio::select! {
        r = c.lock(a.name.clone(), s.lease()) => r?,
        _ = tokio::signal::ctrl_c() => {
            let _ = s.close().await;
            return Err(CtlError::new(exit::INTERRUPTED, "interrupted"));
        }
    };
    let key = String::from_utf8_lossy(&r.key).into_owned();
    if !a.command.is_empty() {
        let rev = r.header.as_ref().map_or(0, |h| h.revision);
        let status = tokio::process::Command::new(&a.command[0])
            .args(&a.command[1..])
            .env("ETCD_LOCK_KEY", &key)
            .env("ETCD_LOCK_REV", rev.to_string())
            .status()
            .await;
        let _ = c.unlock(r.key.clone()).await;
        let _ = s.close().await;
        return match status {
            Ok(st) if st.success() => Ok(()),
            Ok(st) => Err(CtlError::new(
                exit::ERROR,
                format!("command exited with {st}"),
            )),
            Err(e) => Err(CtlError::new(exit::ERROR, e.to_string())),
        };
    }
    println!("{key}");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = s.done() => {
            return Err(CtlError::new(exit::ERROR, "session expired"));
        }
    }
    let _ = c.unlock(r.key).await;
    let _ = s.close().await;
    Ok(())
}

pub async fn elect(ctx: &Ctx, a: ElectArgs) -> CtlResult {
    let c = ctx.client().await?;
    if a.listen {
        let mut obs = c.observe(a.name.clone()).await?;
        loop {
            tokio::select! {
                m = obs.next() => match m {
                    Some(Ok(l)) => {
                        if let Some(kv) = &l.kv {
                            let mut out = String::new();
                            simple_kv(&mut out, ctx.g.hex, false, kv);
                            print!("{out}");
                        }
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(CtlError::new(exit::ERROR, "observe stream closed")),
                },
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
    let Some(prop) = a.proposal else {
        return Err(super::bad_args("no proposal argument but -l not set"));
    };
    let s = Session::new(&c, SessionOptions::default()).await?;
    let r = tokio::select! {
        r = c.campaign(a.name.clone(), s.lease(), prop) => r?,
        _ = tokio::signal::ctrl_c() => {
            let _ = s.close().await;
            return Err(CtlError::new(exit::INTERRUPTED, "interrupted"));
        }
    };
    let leader = r.leader.unwrap_or_default();
    if let Some(kv) = c.get(leader.key.clone()).await? {
        let mut out = String::new();
        simple_kv(&mut out, ctx.g.hex, false, &kv);
        print!("{out}");
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = s.done() => return Err(CtlError::new(exit::ERROR, "elect: session expired")),
    }
    let _ = c.resign(leader).await;
    let _ = s.close().await;
    Ok(())
}
