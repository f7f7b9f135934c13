//! member *, endpoint health|status|hashkv, move-leader, alarm, defrag, snapshot save.
//!
//! Invariants:
//! - Per-member commands (endpoint *, defrag) open one client per endpoint, so every line
//!   names the member it is about; `--cluster` takes the endpoints from the member list.
//! - A failure of one endpoint is reported with that endpoint's name and does not stop the
//!   others; the command then exits with an error.

use std::time::Instant;

use oxcd_client::pb;

use super::kv::fields_hdr;
use super::{bad_args, parse_hex, print_pb, Ctx, Format};
use crate::cli::{AlarmCmd, EndpointArgs, EndpointCmd, MemberCmd, SnapshotCmd};
use crate::fmt::{go_duration, humanize_bytes, quote, table};
use crate::{exit, json, CtlError, CtlResult};

fn member_rows(ms: &[pb::Member]) -> Vec<Vec<String>> {
    ms.iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted"
                } else {
                    "started"
                }
                .to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

fn members_json(
    h: Option<&pb::ResponseHeader>,
    member: Option<&pb::Member>,
    ms: &[pb::Member],
) -> String {
    json::Obj::new()
        .opt("header", json::header(h))
        .opt("member", member.map(json::member))
        .opt("members", json::members(ms))
        .end()
}

fn members_fields(h: Option<&pb::ResponseHeader>, ms: &[pb::Member]) -> String {
    let mut s = String::new();
    fields_hdr(&mut s, h);
    for m in ms {
        s.push_str(&format!(
            "\"ID\" : {}\n\"Name\" : {}\n",
            m.id,
            quote(m.name.as_bytes())
        ));
        for u in &m.peer_ur_ls {
            s.push_str(&format!("\"PeerURL\" : {}\n", quote(u.as_bytes())));
        }
        for u in &m.client_ur_ls {
            s.push_str(&format!("\"ClientURL\" : {}\n", quote(u.as_bytes())));
        }
        s.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
    }
    s
}

fn peer_urls(s: &str) -> CtlResult<Vec<String>> {
    if s.is_empty() {
        return Err(bad_args("member peer urls not provided"));
    }
    let v: Vec<String> = s.split(',').map(str::to_string).collect();
    for u in &v {
        if url::Url::parse(u).is_err() {
            return Err(bad_args(format!("parse {u:?}: invalid URI for request")));
        }
    }
    Ok(v)
}

pub async fn member(ctx: &Ctx, cmd: MemberCmd) -> CtlResult {
    let c = ctx.client().await?;
    match cmd {
        MemberCmd::List => {
            let r = ctx.timed(c.member_list()).await?;
            match ctx.fmt {
                Format::Json => println!("{}", members_json(r.header.as_ref(), None, &r.members)),
                Format::Fields => print!("{}", members_fields(r.header.as_ref(), &r.members)),
                Format::Protobuf => print_pb(&r),
                Format::Table => print!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "STATUS",
                            "NAME",
                            "PEER ADDRS",
                            "CLIENT ADDRS",
                            "IS LEARNER"
                        ],
                        &member_rows(&r.members)
                    )
                ),
                Format::Simple => {
                    for row in member_rows(&r.members) {
                        println!("{}", row.join(", "));
                    }
                }
            }
        }
        MemberCmd::Add {
            name,
            peer_urls: urls,
            learner,
        } => {
            let urls = peer_urls(&urls)?;
            let r = ctx.timed(c.member_add(urls.clone(), learner)).await?;
            let m = r.member.clone().unwrap_or_default();
            let cluster_id = r.header.as_ref().map_or(0, |h| h.cluster_id);
            match ctx.fmt {
                Format::Json => println!(
                    "{}",
                    members_json(r.header.as_ref(), r.member.as_ref(), &r.members)
                ),
                Format::Protobuf => print_pb(&r),
                Format::Fields => {
                    let mut s = members_fields(r.header.as_ref(), std::slice::from_ref(&m));
                    s.push_str(&members_fields(None, &r.members).split_off(0));
                    print!("{s}");
                }
                _ => {
                    let as_learner = if m.is_learner { " as learner " } else { " " };
                    println!(
                        "Member {:16x} added{as_learner}to cluster {cluster_id:16x}",
                        m.id
                    );
                    let mut conf = Vec::new();
                    for mm in &r.members {
                        for u in &mm.peer_ur_ls {
                            let n = if mm.id == m.id { &name } else { &mm.name };
                            conf.push(format!("{n}={u}"));
                        }
                    }
                    println!();
                    println!("ETCD_NAME={}", quote(name.as_bytes()));
                    println!("ETCD_INITIAL_CLUSTER={}", quote(conf.join(",").as_bytes()));
                    println!(
                        "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
                        quote(urls.join(",").as_bytes())
                    );
                    println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
                }
            }
        }
        MemberCmd::Remove { id } => {
            let id = parse_hex(&id, "member")?;
            let r = ctx.timed(c.member_remove(id)).await?;
            let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
            match ctx.fmt {
                Format::Json => println!("{}", members_json(r.header.as_ref(), None, &r.members)),
                Format::Protobuf => print_pb(&r),
                _ => println!("Member {id:16x} removed from cluster {cid:16x}"),
            }
        }
        MemberCmd::Update {
            id,
            peer_urls: urls,
        } => {
            let id = parse_hex(&id, "member")?;
            let urls = peer_urls(&urls)?;
            let r = ctx.timed(c.member_update(id, urls)).await?;
            let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
            match ctx.fmt {
                Format::Json => println!("{}", members_json(r.header.as_ref(), None, &r.members)),
                Format::Protobuf => print_pb(&r),
                _ => println!("Member {id:16x} updated in cluster {cid:16x}"),
            }
        }
        MemberCmd::Promote { id } => {
            let id = parse_hex(&id, "member")?;
            let r = ctx.timed(c.member_promote(id)).await?;
            let cid = r.header.as_ref().map_or(0, |h| h.cluster_id);
            match ctx.fmt {
                Format::Json => println!("{}", members_json(r.header.as_ref(), None, &r.members)),
                Format::Protobuf => print_pb(&r),
                _ => println!("Member {id:16x} promoted in cluster {cid:16x}"),
            }
        }
    }
    Ok(())
}

/// The endpoints a per-member command talks to.
async fn targets(ctx: &Ctx, cluster: bool) -> CtlResult<Vec<String>> {
    if !cluster {
        return Ok(ctx.g.endpoints.clone());
    }
    let c = ctx.client().await?;
    let r = ctx.timed(c.member_list()).await?;
    let mut eps: Vec<String> = r
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.clone())
        .collect();
    eps.dedup();
    Ok(eps)
}

struct Health {
    ep: String,
    ok: bool,
    took: String,
    error: String,
}

async fn health_of(ctx: &Ctx, ep: &str) -> Health {
    let start = Instant::now();
    let res = async {
        let c = ctx.client_of(&[ep.to_string()]).await?;
        // etcdctl: a linearizable get of "health"; permission denied still means healthy.
        match ctx.timed(c.get("health")).await {
            Ok(_) => Ok(()),
            Err(CtlError::Client(e))
                if e.message().is_some_and(|m| m.contains("permission denied")) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }?;
        let alarms = ctx.timed(c.alarm_list()).await?;
        if let Some(a) = alarms.alarms.first() {
            return Err(CtlError::new(
                exit::ERROR,
                format!("Active Alarm(s): {}", alarm_name(a.alarm)),
            ));
        }
        Ok::<(), CtlError>(())
    }
    .await;
    Health {
        ep: ep.to_string(),
        ok: res.is_ok(),
        took: go_duration(start.elapsed()),
        error: res.err().map(|e| e.to_string()).unwrap_or_default(),
    }
}

fn alarm_name(a: i32) -> &'static str {
    match a {
        1 => "NOSPACE",
        2 => "CORRUPT",
        _ => "NONE",
    }
}

pub async fn endpoint(ctx: &Ctx, a: EndpointArgs) -> CtlResult {
    let eps = targets(ctx, a.cluster).await?;
    match a.cmd {
        EndpointCmd::Health => {
            let hs = futures::future::join_all(eps.iter().map(|e| health_of(ctx, e))).await;
            match ctx.fmt {
                Format::Json => {
                    let v = hs.iter().map(|h| {
                        json::Obj::new()
                            .raw("endpoint", json::s(&h.ep))
                            .raw("health", h.ok.to_string())
                            .raw("took", json::s(&h.took))
                            .str_("error", &h.error)
                            .end()
                    });
                    println!("{}", json::arr(v));
                }
                Format::Table => {
                    let rows: Vec<Vec<String>> = hs
                        .iter()
                        .map(|h| {
                            vec![
                                h.ep.clone(),
                                h.ok.to_string(),
                                h.took.clone(),
                                h.error.clone(),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows));
                }
                Format::Fields => {
                    for h in &hs {
                        println!(
                            "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n",
                            quote(h.ep.as_bytes()),
                            h.ok,
                            h.took,
                            h.error
                        );
                    }
                }
                Format::Protobuf => return Err(ctx.unsupported()),
                Format::Simple => {
                    for h in &hs {
                        if h.ok {
                            eprintln!(
                                "{} is healthy: successfully committed proposal: took = {}",
                                h.ep, h.took
                            );
                        } else {
                            eprintln!(
                                "{} is unhealthy: failed to commit proposal: {}",
                                h.ep, h.error
                            );
                        }
                    }
                }
            }
            if hs.iter().any(|h| !h.ok) {
                return Err(CtlError::new(exit::ERROR, "unhealthy cluster"));
            }
        }
        EndpointCmd::Status => {
            let mut st = Vec::new();
            let mut failed = false;
            for ep in &eps {
                let r = async {
                    let c = ctx.client_of(std::slice::from_ref(ep)).await?;
                    ctx.timed(c.status()).await
                }
                .await;
                match r {
                    Ok(s) => st.push((ep.clone(), s)),
                    Err(e) => {
                        eprintln!("Failed to get the status of endpoint {ep} ({e})");
                        failed = true;
                    }
                }
            }
            let rows: Vec<Vec<String>> = st
                .iter()
                .map(|(ep, s)| {
                    let id = s.header.as_ref().map_or(0, |h| h.member_id);
                    vec![
                        ep.clone(),
                        format!("{id:x}"),
                        s.version.clone(),
                        humanize_bytes(s.db_size.max(0) as u64),
                        (s.leader == id).to_string(),
                        s.is_learner.to_string(),
                        s.raft_term.to_string(),
                        s.raft_index.to_string(),
                        s.raft_applied_index.to_string(),
                        s.errors.join(", "),
                    ]
                })
                .collect();
            match ctx.fmt {
                Format::Json => {
                    let v = st.iter().map(|(ep, s)| {
                        json::Obj::new()
                            .raw("Endpoint", json::s(ep))
                            .raw("Status", json::status(s))
                            .end()
                    });
                    println!("{}", json::arr(v));
                }
                Format::Table => print!(
                    "{}",
                    table(
                        &[
                            "ENDPOINT",
                            "ID",
                            "VERSION",
                            "DB SIZE",
                            "IS LEADER",
                            "IS LEARNER",
                            "RAFT TERM",
                            "RAFT INDEX",
                            "RAFT APPLIED INDEX",
                            "ERRORS"
                        ],
                        &rows
                    )
                ),
                Format::Fields => {
                    for (ep, s) in &st {
                        let mut o = String::new();
                        fields_hdr(&mut o, s.header.as_ref());
                        o.push_str(&format!(
                            "\"Version\" : {}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : [{}]\n\"Endpoint\" : {}\n\n",
                            quote(s.version.as_bytes()), s.db_size, s.leader, s.is_learner, s.raft_index, s.raft_term, s.raft_applied_index, s.errors.join(" "), quote(ep.as_bytes())
                        ));
                        print!("{o}");
                    }
                }
                Format::Protobuf => return Err(ctx.unsupported()),
                Format::Simple => {
                    for r in rows {
                        println!("{}", r.join(", "));
                    }
                }
            }
            if failed {
                return Err(CtlError::new(
                    exit::ERROR,
                    "failed to get the status of some endpoints",
                ));
            }
        }
        EndpointCmd::Hashkv { rev } => {
            // etcdctl: each failure on stderr, the others printed, then the last error.
            let mut hs = Vec::new();
            let mut last_err = None;
            for ep in &eps {
                let r = async {
                    let c = ctx.client_of(std::slice::from_ref(ep)).await?;
                    ctx.timed(c.hash_kv(rev)).await
                }
                .await;
                match r {
                    Ok(h) => hs.push((ep.clone(), h)),
                    Err(e) => {
                        eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                        last_err = Some(e);
                    }
                }
            }
            print_hashkv(ctx, &hs)?;
            // etcdctl's client reaches the endpoints lazily: a dead one is an ERROR (1).
            if let Some(e) = last_err {
                return Err(CtlError::new(exit::ERROR, e.to_string()));
            }
        }
    }
    Ok(())
}

fn print_hashkv(ctx: &Ctx, hs: &[(String, pb::HashKvResponse)]) -> CtlResult {
    match ctx.fmt {
        Format::Json => {
            let v = hs.iter().map(|(ep, h)| {
                let hr = json::Obj::new()
                    .opt("header", json::header(h.header.as_ref()))
                    .num("hash", h.hash)
                    .num("compact_revision", h.compact_revision)
                    .end();
                json::Obj::new()
                    .raw("Endpoint", json::s(ep))
                    .raw("HashKV", hr)
                    .end()
            });
            println!("{}", json::arr(v));
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = hs
                .iter()
                .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
                .collect();
            print!("{}", table(&["ENDPOINT", "HASH"], &rows));
        }
        Format::Fields => {
            for (ep, h) in hs {
                let mut o = String::new();
                fields_hdr(&mut o, h.header.as_ref());
                o.push_str(&format!(
                    "\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                    quote(ep.as_bytes()),
                    h.hash
                ));
                print!("{o}");
            }
        }
        Format::Protobuf => return Err(ctx.unsupported()),
        Format::Simple => {
            for (ep, h) in hs {
                println!("{ep}, {}", h.hash);
            }
        }
    }
    Ok(())
}

pub async fn move_leader(ctx: &Ctx, transferee: &str) -> CtlResult {
    let target = parse_hex(transferee, "member")?;
    let c = ctx.client().await?;
    let ms = ctx.timed(c.member_list()).await?;
    // The request must reach the leader: find it through the endpoints' status.
    let mut leader = None;
    for ep in &ctx.g.endpoints {
        let cc = ctx.client_of(std::slice::from_ref(ep)).await?;
        let s = ctx.timed(cc.status()).await?;
        if s.header.as_ref().is_some_and(|h| h.member_id == s.leader) {
            leader = Some((cc, s.leader));
            break;
        }
    }
    let Some((lc, lid)) = leader else {
        return Err(CtlError::new(
            exit::ERROR,
            "no leader endpoint given at [".to_string() + &ctx.g.endpoints.join(" ") + "]",
        ));
    };
    let _ = ms;
    let r = ctx.timed(lc.move_leader(target)).await?;
    match ctx.fmt {
        Format::Json => println!(
            "{}",
            json::Obj::new()
                .opt("header", json::header(r.header.as_ref()))
                .end()
        ),
        _ => println!("Leadership transferred from {lid:x} to {target:x}"),
    }
    Ok(())
}

pub async fn alarm(ctx: &Ctx, cmd: AlarmCmd) -> CtlResult {
    let c = ctx.client().await?;
    let r = match cmd {
        AlarmCmd::List => ctx.timed(c.alarm_list()).await?,
        AlarmCmd::Disarm => {
            let list = ctx.timed(c.alarm_list()).await?;
            let mut last = list.clone();
            for a in &list.alarms {
                last = ctx.timed(c.alarm_disarm(a)).await?;
            }
            last.alarms = list.alarms;
            last
        }
    };
    match ctx.fmt {
        Format::Json => {
            let v = r.alarms.iter().map(|a| {
                json::Obj::new()
                    .num("memberID", a.member_id)
                    .num("alarm", a.alarm)
                    .end()
            });
            println!(
                "{}",
                json::Obj::new()
                    .opt("header", json::header(r.header.as_ref()))
                    .opt("alarms", (!r.alarms.is_empty()).then(|| json::arr(v)))
                    .end()
            );
        }
        Format::Fields => {
            let mut s = String::new();
            fields_hdr(&mut s, r.header.as_ref());
            for a in &r.alarms {
                s.push_str(&format!(
                    "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                    a.member_id,
                    alarm_name(a.alarm)
                ));
            }
            print!("{s}");
        }
        Format::Protobuf => print_pb(&r),
        Format::Table => return Err(ctx.unsupported()),
        Format::Simple => {
            for a in &r.alarms {
                println!("memberID:{} alarm:{} ", a.member_id, alarm_name(a.alarm));
            }
        }
    }
    Ok(())
}

pub async fn defrag(ctx: &Ctx, cluster: bool) -> CtlResult {
    let mut failed = false;
    for ep in targets(ctx, cluster).await? {
        let r = async {
            let c = ctx.client_of(std::slice::from_ref(&ep)).await?;
            ctx.timed(c.defragment()).await
        }
        .await;
        match r {
            Ok(_) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failed = true;
            }
        }
    }
    if failed {
        return Err(CtlError::new(exit::ERROR, ""));
    }
    Ok(())
}

pub async fn snapshot(ctx: &Ctx, cmd: SnapshotCmd) -> CtlResult {
    match cmd {
        SnapshotCmd::Save { filename } => {
            let Some(filename) = filename else {
                return Err(bad_args("snapshot save expects one argument"));
            };
            // etcdctl: every failure of the save itself exits with code 5.
            save(ctx, &filename)
                .await
                .map_err(|e| CtlError::new(exit::INTERRUPTED, e.to_string()))?;
            println!("Snapshot saved at {filename}");
            Ok(())
        }
        SnapshotCmd::Status { .. } | SnapshotCmd::Restore { .. } => Err(CtlError::new(
            exit::BAD_FEATURE,
            "snapshot status/restore work offline on the data files: use oxcdutl snapshot status|restore (etcdutl for etcd's bbolt files)",
        )),
    }
}

/// Stream the snapshot into `<filename>.part`, sync it, rename it to `filename`; a progress
/// line on stderr when that is a terminal.
async fn save(ctx: &Ctx, filename: &str) -> CtlResult {
    use futures::StreamExt;
    use std::io::Write;
    if ctx.g.endpoints.len() != 1 {
        return Err(CtlError::new(
            exit::INTERRUPTED,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                ctx.g.endpoints.join(" ")
            ),
        ));
    }
    let io = |e: std::io::Error| CtlError::new(exit::IO, e.to_string());
    let c = ctx.client().await?;
    let part = format!("{filename}.part");
    let mut f = std::fs::File::create(&part)
        .map_err(|e| CtlError::new(exit::IO, format!("could not open {part} ({e})")))?;
    let mut s = c.snapshot().await?;
    let mut got: u64 = 0;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        f.write_all(&chunk.blob).map_err(io)?;
        got += chunk.blob.len() as u64;
        if progress {
            let total = got + chunk.remaining_bytes;
            let pct = (got * 100).checked_div(total).unwrap_or(100);
            eprint!(
                "\r{} / {} ({pct}%)",
                humanize_bytes(got),
                humanize_bytes(total)
            );
        }
    }
    if progress {
        eprintln!();
    }
    f.sync_all().map_err(io)?;
    std::fs::rename(&part, filename).map_err(io)?;
    Ok(())
}
