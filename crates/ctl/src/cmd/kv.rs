//! get, put, del, txn and compaction.
//!
//! Invariant: argument errors use etcdctl's texts and exit code 128; request building is
//! shared with txn's request lines ([`get_op`], [`put_op`], [`del_op`]).

use std::io::BufRead;

use oxcd_client::pb::{self, response_op::Response};
use oxcd_client::{DeleteOptions, GetOptions, KeyValue, PutOptions, SortOrder};

use super::{bad_args, print_pb, Ctx, Format};
use crate::cli::{CompactionArgs, DelArgs, GetArgs, PutArgs, TxnArgs};
use crate::fmt::{hex_prefixed, quote};
use crate::{exit, json, CtlError, CtlResult};

/// Key and options of a get.
pub fn get_op(a: &GetArgs) -> CtlResult<(Vec<u8>, GetOptions)> {
    let Some(key) = a.key.clone() else {
        return Err(bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    };
    if a.prefix && a.from_key {
        return Err(bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut o = GetOptions {
        limit: a.limit,
        revision: a.rev,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    };
    match a.consistency.as_str() {
        "l" => {}
        "s" => o.serializable = true,
        other => return Err(bad_args(format!("unknown consistency flag {other:?}"))),
    }
    o.sort = match a.order.as_str() {
        "" => SortOrder::None,
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        other => return Err(bad_args(format!("bad sort order {other:?}"))),
    };
    if !a.sort_by.is_empty()
        && !["CREATE", "KEY", "MODIFY", "VALUE", "VERSION"].contains(&a.sort_by.as_str())
    {
        return Err(bad_args(format!("bad sort target {:?}", a.sort_by)));
    }
    if let Some(end) = &a.range_end {
        if a.prefix {
            return Err(bad_args(
                "too many arguments, only accept one argument when `--prefix` is set.",
            ));
        }
        o.range_end = Some(end.clone().into_bytes());
    }
    if a.prefix {
        o.prefix = true;
    }
    if a.from_key {
        o.range_end = Some(vec![0]);
    }
    if a.from_key && key.is_empty() {
        return Ok((vec![0], o));
    }
    Ok((key.into_bytes(), o))
}

fn sort_target(s: &str) -> i32 {
    use pb::range_request::SortTarget as T;
    (match s {
        "CREATE" => T::Create,
        "MODIFY" => T::Mod,
        "VALUE" => T::Value,
        "VERSION" => T::Version,
        _ => T::Key,
    }) as i32
}

/// Key, value and options of a put.
pub fn put_op(a: &PutArgs, allow_stdin: bool) -> CtlResult<(Vec<u8>, Vec<u8>, PutOptions)> {
    let Some(key) = a.key.clone() else {
        return Err(bad_args(
            "put command needs 1 argument and input from stdin or 2 arguments",
        ));
    };
    let value = match (&a.value, a.ignore_value) {
        (Some(v), false) => v.clone(),
        (Some(_), true) => {
            return Err(bad_args(
                "put command needs only 1 argument when 'ignore-value' is set",
            ))
        }
        (None, true) => String::new(),
        (None, false) if !allow_stdin => {
            return Err(bad_args(
                "put command needs 1 argument and input from stdin or 2 arguments",
            ))
        }
        (None, false) => {
            let mut s = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut s)
                .map_err(|e| CtlError::new(exit::IO, e.to_string()))?;
            if s.is_empty() {
                return Err(bad_args(
                    "put command needs 1 argument and input from stdin or 2 arguments",
                ));
            }
            s.trim_end_matches('\n').to_string()
        }
    };
    let lease = i64::from_str_radix(&a.lease, 16).map_err(|e| {
        bad_args(format!(
            "bad lease ID ({}), expecting ID in Hex",
            super::go_parse_err("ParseInt", &a.lease, &e)
        ))
    })?;
    Ok((
        key.into_bytes(),
        value.into_bytes(),
        PutOptions {
            lease,
            prev_kv: a.prev_kv,
            ignore_value: a.ignore_value,
            ignore_lease: a.ignore_lease,
        },
    ))
}

/// Key and options of a delete.
pub fn del_op(a: &DelArgs) -> CtlResult<(Vec<u8>, DeleteOptions)> {
    let Some(key) = a.key.clone() else {
        return Err(bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    };
    if a.prefix && a.from_key {
        return Err(bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut o = DeleteOptions {
        prev_kv: a.prev_kv,
        prefix: a.prefix,
        ..Default::default()
    };
    if let Some(end) = &a.range_end {
        if a.prefix {
            return Err(bad_args(
                "too many arguments, only accept one argument when `--prefix` is set.",
            ));
        }
        o.range_end = Some(end.clone().into_bytes());
    }
    if a.from_key {
        o.range_end = Some(vec![0]);
        if key.is_empty() {
            return Ok((vec![0], o));
        }
    }
    Ok((key.into_bytes(), o))
}

/// etcdctl's simple form of one key-value.
pub fn simple_kv(out: &mut String, hex: bool, value_only: bool, kv: &KeyValue) {
    let (k, v) = if hex {
        (hex_prefixed(&kv.key), hex_prefixed(&kv.value))
    } else {
        (
            String::from_utf8_lossy(&kv.key).into_owned(),
            String::from_utf8_lossy(&kv.value).into_owned(),
        )
    };
    if !value_only {
        out.push_str(&k);
        out.push('\n');
    }
    out.push_str(&v);
    out.push('\n');
}

pub fn fields_hdr(out: &mut String, h: Option<&pb::ResponseHeader>) {
    let h = h.cloned().unwrap_or_default();
    out.push_str(&format!(
        "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
        h.cluster_id, h.member_id, h.revision, h.raft_term
    ));
}

pub fn fields_kv(out: &mut String, pfx: &str, kv: &KeyValue) {
    out.push_str(&format!("\"{pfx}Key\" : {}\n", quote(&kv.key)));
    out.push_str(&format!(
        "\"{pfx}CreateRevision\" : {}\n",
        kv.create_revision
    ));
    out.push_str(&format!("\"{pfx}ModRevision\" : {}\n", kv.mod_revision));
    out.push_str(&format!("\"{pfx}Version\" : {}\n", kv.version));
    out.push_str(&format!("\"{pfx}Value\" : {}\n", quote(&kv.value)));
    out.push_str(&format!("\"{pfx}Lease\" : {}\n", kv.lease));
}

fn text_range(ctx: &Ctx, out: &mut String, r: &pb::RangeResponse, value_only: bool) {
    match ctx.fmt {
        Format::Fields => {
            fields_hdr(out, r.header.as_ref());
            for kv in &r.kvs {
                fields_kv(out, "", kv);
            }
            out.push_str(&format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count));
        }
        _ => {
            for kv in &r.kvs {
                simple_kv(out, ctx.g.hex, value_only, kv);
            }
        }
    }
}

fn text_put(ctx: &Ctx, out: &mut String, r: &pb::PutResponse) {
    match ctx.fmt {
        Format::Fields => {
            fields_hdr(out, r.header.as_ref());
            if let Some(kv) = &r.prev_kv {
                fields_kv(out, "Prev", kv);
            }
        }
        _ => {
            out.push_str("OK\n");
            if let Some(kv) = &r.prev_kv {
                simple_kv(out, ctx.g.hex, false, kv);
            }
        }
    }
}

fn text_del(ctx: &Ctx, out: &mut String, r: &pb::DeleteRangeResponse) {
    match ctx.fmt {
        Format::Fields => {
            fields_hdr(out, r.header.as_ref());
            out.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
            for kv in &r.prev_kvs {
                fields_kv(out, "Prev", kv);
            }
        }
        _ => {
            out.push_str(&format!("{}\n", r.deleted));
            for kv in &r.prev_kvs {
                simple_kv(out, ctx.g.hex, false, kv);
            }
        }
    }
}

fn text_txn(ctx: &Ctx, out: &mut String, r: &pb::TxnResponse) {
    if ctx.fmt == Format::Fields {
        fields_hdr(out, r.header.as_ref());
        out.push_str(&format!("\"Succeeded\" : {}\n", r.succeeded));
    } else {
        out.push_str(if r.succeeded {
            "SUCCESS\n"
        } else {
            "FAILURE\n"
        });
    }
    for op in &r.responses {
        if ctx.fmt != Format::Fields {
            out.push('\n');
        }
        match &op.response {
            Some(Response::ResponseRange(x)) => text_range(ctx, out, x, false),
            Some(Response::ResponsePut(x)) => text_put(ctx, out, x),
            Some(Response::ResponseDeleteRange(x)) => text_del(ctx, out, x),
            Some(Response::ResponseTxn(x)) => text_txn(ctx, out, x),
            None => {}
        }
    }
}

/// Print a response in the chosen format (`text` for simple and fields).
fn emit(
    ctx: &Ctx,
    json: impl FnOnce() -> String,
    pb: impl FnOnce(),
    text: impl FnOnce(&mut String),
) -> CtlResult {
    match ctx.fmt {
        Format::Json => println!("{}", json()),
        Format::Protobuf => pb(),
        Format::Table => return Err(ctx.unsupported()),
        Format::Simple | Format::Fields => {
            let mut s = String::new();
            text(&mut s);
            print!("{s}");
        }
    }
    Ok(())
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> CtlResult {
    let (key, o) = get_op(&a)?;
    let mut req = o.to_request(key);
    req.sort_target = sort_target(&a.sort_by);
    if !a.sort_by.is_empty() && a.order.is_empty() {
        req.sort_order = pb::range_request::SortOrder::Ascend as i32;
    }
    let c = ctx.client().await?;
    let r = ctx.timed(c.range_raw(req)).await?;
    if ctx.fmt == Format::Table {
        return Err(ctx.unsupported());
    }
    emit(
        ctx,
        || json::range(&r),
        || print_pb(&r),
        |s| text_range(ctx, s, &r, a.print_value_only),
    )
}

/// Print a range response as `get` does in the chosen format (etcdctl's `display.Get`).
pub fn print_range(ctx: &Ctx, r: &pb::RangeResponse) -> CtlResult {
    if ctx.fmt == Format::Table {
        return Err(ctx.unsupported());
    }
    emit(
        ctx,
        || json::range(r),
        || print_pb(r),
        |s| text_range(ctx, s, r, false),
    )
}

pub async fn put(ctx: &Ctx, a: PutArgs) -> CtlResult {
    let (k, v, o) = put_op(&a, true)?;
    let c = ctx.client().await?;
    let r = ctx.timed(c.put(k, v, &o)).await?;
    emit(
        ctx,
        || json::put(&r),
        || print_pb(&r),
        |s| text_put(ctx, s, &r),
    )
}

pub async fn del(ctx: &Ctx, a: DelArgs) -> CtlResult {
    let (k, o) = del_op(&a)?;
    let c = ctx.client().await?;
    let r = ctx.timed(c.delete(k, &o)).await?;
    emit(
        ctx,
        || json::del(&r),
        || print_pb(&r),
        |s| text_del(ctx, s, &r),
    )
}

/// Read txn input: compares, success requests, failure requests, each ended by a blank line.
fn read_txn(interactive: bool) -> CtlResult<pb::TxnRequest> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut section = |prompt: &str| -> CtlResult<Vec<String>> {
        if interactive {
            println!("{prompt}");
        }
        let mut v = Vec::new();
        loop {
            match lines.next() {
                None => return Err(CtlError::new(exit::ERROR, "EOF")),
                Some(Err(e)) => return Err(CtlError::new(exit::IO, e.to_string())),
                Some(Ok(l)) if l.trim().is_empty() => return Ok(v),
                Some(Ok(l)) => v.push(l),
            }
        }
    };
    let invalid = |e: String| {
        // etcdctl: its get/put/del argument checks exit 128, parse errors 3.
        let code = if e.starts_with("malformed") || e.starts_with("invalid txn") {
            exit::INVALID_INPUT
        } else {
            exit::BAD_ARGS
        };
        CtlError::new(code, e)
    };
    let cmps = section("compares:")?;
    let succ = section("success requests (get, put, del):")?;
    let fail = section("failure requests (get, put, del):")?;
    let compare = cmps
        .iter()
        .map(|l| crate::txn_parse::parse_compare(l).map_err(invalid))
        .collect::<CtlResult<Vec<_>>>()?;
    let ops = |v: &[String]| {
        v.iter()
            .map(|l| crate::txn_parse::parse_request(l).map_err(invalid))
            .collect::<CtlResult<Vec<_>>>()
    };
    Ok(pb::TxnRequest {
        compare,
        success: ops(&succ)?,
        failure: ops(&fail)?,
    })
}

pub async fn txn(ctx: &Ctx, a: TxnArgs) -> CtlResult {
    let req = read_txn(a.interactive)?;
    let c = ctx.client().await?;
    let r = ctx.timed(c.txn_raw(req)).await?;
    emit(
        ctx,
        || json::txn(&r),
        || print_pb(&r),
        |s| text_txn(ctx, s, &r),
    )
}

pub async fn compaction(ctx: &Ctx, a: CompactionArgs) -> CtlResult {
    let rev: i64 = a.revision.parse().map_err(|e| bad_args(format!("{e}")))?;
    let c = ctx.client().await?;
    let r = ctx.timed(c.compact(rev, a.physical)).await?;
    match ctx.fmt {
        Format::Json => println!(
            "{}",
            json::Obj::new()
                .opt("header", json::header(r.header.as_ref()))
                .end()
        ),
        Format::Protobuf => print_pb(&r),
        _ => println!("compacted revision {rev}"),
    }
    Ok(())
}
