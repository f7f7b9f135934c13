//! watch: one watch from the command line, or several from stdin with `-i`; optionally
//! runs a command per event (`-- cmd args`) with etcdctl's `ETCD_WATCH_*` environment.
//!
//! Invariant: events are printed in the order the server sends them, one response at a
//! time; the command for an event runs after the event was printed.

use clap::Parser;
use oxcd_client::pb::WatchResponse;
use oxcd_client::{EventType, WatchOptions};

use super::kv::{fields_hdr, fields_kv, simple_kv};
use super::{bad_args, Ctx, Format};
use crate::cli::WatchArgs;
use crate::fmt::quote;
use crate::{exit, json, CtlError, CtlResult};

fn event_name(t: i32) -> &'static str {
    if t == EventType::Delete as i32 {
        "DELETE"
    } else {
        "PUT"
    }
}

fn print_resp(ctx: &Ctx, r: &WatchResponse) {
    let mut out = String::new();
    match ctx.fmt {
        Format::Json => {
            let h = json::header_fields(r.header.as_ref()).end();
            let evs = if r.events.is_empty() {
                "null".to_string()
            } else {
                json::arr(r.events.iter().map(json::event))
            };
            out = json::Obj::new()
                .raw("Header", h)
                .raw("Events", evs)
                .num_always("CompactRevision", r.compact_revision)
                .raw("Canceled", r.canceled.to_string())
                .raw("Created", r.created.to_string())
                .end();
            out.push('\n');
        }
        Format::Fields => {
            fields_hdr(&mut out, r.header.as_ref());
            for e in &r.events {
                out.push_str(&format!("\"Type\" : {}\n", event_name(e.r#type)));
                if let Some(p) = &e.prev_kv {
                    fields_kv(&mut out, "Prev", p);
                }
                if let Some(kv) = &e.kv {
                    fields_kv(&mut out, "", kv);
                }
            }
        }
        _ => {
            for e in &r.events {
                out.push_str(event_name(e.r#type));
                out.push('\n');
                if let Some(p) = &e.prev_kv {
                    simple_kv(&mut out, ctx.g.hex, false, p);
                }
                if let Some(kv) = &e.kv {
                    simple_kv(&mut out, ctx.g.hex, false, kv);
                }
            }
        }
    }
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.as_bytes());
    let _ = so.flush();
}

/// Split `args` into watch arguments and the command after `--` (found in the raw
/// command line, since the parser swallows `--`).
fn split_exec(args: &[String], raw: &[String]) -> (Vec<String>, Vec<String>) {
    match raw.iter().position(|a| a == "--") {
        Some(p) => {
            let exec: Vec<String> = raw[p + 1..].to_vec();
            let keep = args.len().saturating_sub(exec.len());
            (args[..keep].to_vec(), exec)
        }
        None => (args.to_vec(), Vec::new()),
    }
}

async fn run_one(ctx: &Ctx, a: &WatchArgs, keys: &[String], exec: &[String]) -> CtlResult {
    let (key, end) = match keys {
        [k] => (k.clone(), None),
        [k, e] => (k.clone(), Some(e.clone())),
        [] => return Err(bad_args("watch in non-interactive mode requires one or two arguments as key or prefix, with range end")),
        _ => return Err(bad_args("too many arguments")),
    };
    if a.prefix && end.is_some() {
        return Err(bad_args(
            "too many arguments, only accept one argument when `--prefix` is set.",
        ));
    }
    let opts = WatchOptions {
        range_end: end.map(String::into_bytes),
        prefix: a.prefix,
        start_revision: a.rev,
        prev_kv: a.prev_kv,
        progress_notify: a.progress_notify,
        ..Default::default()
    };
    let c = ctx.client().await?;
    let (_w, mut stream) = c.watch(key, &opts).await?;
    loop {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                return Err(CtlError::new(
                    exit::INTERRUPTED,
                    "watch is canceled by the server",
                ))
            }
        };
        if resp.canceled {
            println!("watch was canceled ({})", resp.cancel_reason);
        }
        if resp.events.is_empty() && !resp.canceled && !resp.created && resp.compact_revision == 0 {
            println!(
                "progress notify: {}",
                resp.header.as_ref().map_or(0, |h| h.revision)
            );
        }
        print_resp(ctx, &resp);
        if !exec.is_empty() {
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            for e in &resp.events {
                let kv = e.kv.clone().unwrap_or_default();
                let status = tokio::process::Command::new(&exec[0])
                    .args(&exec[1..])
                    .env("ETCD_WATCH_REVISION", rev.to_string())
                    .env(
                        "ETCD_WATCH_EVENT_TYPE",
                        format!("\"{}\"", event_name(e.r#type)),
                    )
                    .env("ETCD_WATCH_KEY", quote(&kv.key))
                    .env("ETCD_WATCH_VALUE", quote(&kv.value))
                    .status()
                    .await;
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => {
                        return Err(CtlError::new(
                            exit::ERROR,
                            format!("command {exec:?} error ({s})"),
                        ))
                    }
                    Err(e) => {
                        return Err(CtlError::new(
                            exit::ERROR,
                            format!("command {exec:?} error ({e})"),
                        ))
                    }
                }
            }
        }
        if resp.canceled {
            return Err(CtlError::new(
                exit::INTERRUPTED,
                "watch is canceled by the server",
            ));
        }
    }
}

/// One `watch ...` line of interactive mode.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
enum Line {
    Watch(WatchArgs),
}

pub async fn watch(ctx: &Ctx, a: WatchArgs) -> CtlResult {
    if !a.interactive {
        let raw: Vec<String> = std::env::args().collect();
        let after_watch = raw.iter().position(|x| x == "watch").map_or(0, |p| p + 1);
        let (keys, exec) = split_exec(&a.args, &raw[after_watch..]);
        return run_one(ctx, &a, &keys, &exec).await;
    }
    if !a.args.is_empty() {
        return Err(bad_args("watch in interactive mode requires no arguments"));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if tx.blocking_send(l).is_err() {
                break;
            }
        }
    });
    use futures::StreamExt;
    let mut tasks = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else {
                    return Err(CtlError::new(exit::INVALID_INPUT, "Error reading watch request line: EOF"));
                };
                let words = match crate::txn_parse::argify(&line) {
                    Ok(w) => w,
                    Err(e) => { eprintln!("Invalid command: {e}"); continue; }
                };
                if words.is_empty() { continue; }
                let la = match Line::try_parse_from(&words) {
                    Ok(Line::Watch(la)) => la,
                    Err(_) => { eprintln!("Invalid command {line} (only support watch)"); continue; }
                };
                let (keys, exec) = split_exec(&la.args, &words);
                // Each line is its own watch; they share the output.
                tasks.push(Box::pin(async move { run_one(ctx, &la, &keys, &exec).await }));
            }
            Some(r) = tasks.next(), if !tasks.is_empty() => r?,
        }
    }
}
