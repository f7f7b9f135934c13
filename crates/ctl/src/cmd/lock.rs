//! lock and elect over etcd's Lock and Election services, holding a session lease.
//!
//! Invariants:
//! - The session's lease is revoked on every exit path this process controls (command
//!   finished, SIGINT or SIGTERM), so the lock or candidacy never outlives oxcdctl by more
//!   than the lease TTL.
//! - Output and exit codes are etcdctl 3.4's: the held key is printed as `get` prints it
//!   (any `-w` format); a signal while holding ends with 0, while waiting with
//!   `context canceled`.

use futures::StreamExt;
use oxcd_client::concurrency::{Session, SessionOptions};
use oxcd_client::GetOptions;

use super::kv::print_range;
use super::{bad_args, Ctx};
use crate::cli::{ElectArgs, LockArgs};
use crate::{exit, CtlError, CtlResult};

/// SIGINT and SIGTERM, caught from creation on (so a signal that arrives between two
/// waits is not lost to the default action).
pub struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    pub fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.int) => {}
            _ = one(&mut self.term) => {}
        }
    }
}

fn canceled() -> CtlError {
    CtlError::new(exit::ERROR, "context canceled")
}

/// Go's `exec.Cmd.Run` error text for a failed command.
fn exec_error(prog: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("exec: {prog:?}: executable file not found in $PATH")
    } else {
        format!("fork/exec {prog}: {e}")
    }
}

pub async fn lock(ctx: &Ctx, a: LockArgs) -> CtlResult {
    let Some(name) = a.name else {
        return Err(bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let mut sig = Signals::new();
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
        r = c.lock(name.clone(), s.lease()) => r?,
        _ = sig.recv() => {
            let _ = s.close().await;
            return Err(canceled());
        }
    };
    if !a.command.is_empty() {
        let key = String::from_utf8_lossy(&r.key).into_owned();
        let rev = r.header.as_ref().map_or(0, |h| h.revision);
        let status = tokio::process::Command::new(&a.command[0])
            .args(&a.command[1..])
            .env("ETCD_LOCK_KEY", &key)
            .env("ETCD_LOCK_REV", rev.to_string())
            .status()
            .await;
        let unlocked = c.unlock(r.key.clone()).await;
        let _ = s.close().await;
        return match status {
            Ok(st) if st.success() => unlocked.map(|_| ()).map_err(Into::into),
            Ok(st) => Err(CtlError::new(exit::ERROR, go_exit_status(&st))),
            Err(e) => Err(CtlError::new(exit::ERROR, exec_error(&a.command[0], &e))),
        };
    }
    let got = ctx
        .timed(c.range(r.key.clone(), &GetOptions::default()))
        .await?;
    if got.kvs.is_empty() {
        let _ = s.close().await;
        return Err(CtlError::new(exit::ERROR, "lock lost on init"));
    }
    print_range(ctx, &got)?;
    flush();
    tokio::select! {
        _ = sig.recv() => {}
        _ = s.done() => {
            return Err(CtlError::new(exit::ERROR, "session expired"));
        }
    }
    let unlocked = c.unlock(r.key).await;
    let _ = s.close().await;
    unlocked?;
    Ok(())
}

fn flush() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// Go's `*exec.ExitError` text: `exit status N` or `signal: <name>`.
fn go_exit_status(st: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(9)) => "signal: killed".into(),
        (None, Some(15)) => "signal: terminated".into(),
        (None, Some(s)) => format!("signal: {s}"),
        (None, None) => st.to_string(),
    }
}

pub async fn elect(ctx: &Ctx, a: ElectArgs) -> CtlResult {
    let Some(name) = a.name else {
        return Err(bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    };
    if a.proposal.is_none() && !a.listen {
        return Err(bad_args("no proposal argument but -l not set"));
    }
    if a.proposal.is_some() && a.listen {
        return Err(bad_args("proposal given but -l is set"));
    }
    let mut sig = Signals::new();
    let c = ctx.client().await?;
    let Some(prop) = a.proposal else {
        let mut obs = c.observe(name.clone()).await?;
        loop {
            tokio::select! {
                m = obs.next() => match m {
                    Some(Ok(l)) => {
                        if let Some(kv) = &l.kv {
                            let r = oxcd_client::pb::RangeResponse {
                                header: l.header,
                                kvs: vec![kv.clone()],
                                count: 1,
                                more: false,
                            };
                            print_range(ctx, &r)?;
                            flush();
                        }
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(CtlError::new(exit::ERROR, "elect: observer lost")),
                },
                _ = sig.recv() => return Ok(()),
            }
        }
    };
    let s = Session::new(&c, SessionOptions::default()).await?;
    let r = tokio::select! {
        r = c.campaign(name.clone(), s.lease(), prop) => r?,
        _ = sig.recv() => {
            let _ = s.close().await;
            return Err(canceled());
        }
    };
    let leader = r.leader.unwrap_or_default();
    let got = ctx
        .timed(c.range(leader.key.clone(), &GetOptions::default()))
        .await?;
    print_range(ctx, &got)?;
    flush();
    tokio::select! {
        _ = sig.recv() => {}
        _ = s.done() => return Err(CtlError::new(exit::ERROR, "elect: session expired")),
    }
    let resigned = c.resign(leader).await;
    let _ = s.close().await;
    resigned?;
    Ok(())
}
