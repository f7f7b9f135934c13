//! lease grant | revoke | timetolive | list | keep-alive.
//!
//! Invariant: lease ids are read and printed in hexadecimal (`%016x`), as etcdctl does;
//! JSON output flattens the response header like clientv3's lease response structs.

use super::kv::fields_hdr;
use super::{bad_args, print_pb, Ctx, Format};
use crate::cli::LeaseCmd;
use crate::{exit, json, CtlError, CtlResult};

fn flat(h: Option<&oxcd_client::pb::ResponseHeader>) -> json::Obj {
    json::header_fields(h)
}

pub async fn run(ctx: &Ctx, cmd: LeaseCmd) -> CtlResult {
    match cmd {
        LeaseCmd::Grant { ttl } => {
            let ttl: i64 = ttl
                .parse()
                .map_err(|e| bad_args(format!("bad TTL ({e})")))?;
            let c = ctx.client().await?;
            let r = ctx
                .timed(c.lease_grant(ttl, 0))
                .await
                .map_err(|e| CtlError::new(exit::ERROR, format!("failed to grant lease ({e})")))?;
            match ctx.fmt {
                Format::Json => println!(
                    "{}",
                    flat(r.header.as_ref())
                        .num_always("ID", r.id)
                        .num_always("TTL", r.ttl)
                        .raw("Error", json::s(&r.error))
                        .end()
                ),
                Format::Fields => {
                    let mut s = String::new();
                    fields_hdr(&mut s, r.header.as_ref());
                    print!("{s}\"ID\" : {}\n\"TTL\" : {}\n", r.id, r.ttl);
                }
                Format::Protobuf => print_pb(&r),
                Format::Table => return Err(ctx.unsupported()),
                Format::Simple => println!("lease {:016x} granted with TTL({}s)", r.id, r.ttl),
            }
        }
        LeaseCmd::Revoke { id } => {
            let id = super::parse_lease(&id)?;
            let c = ctx.client().await?;
            let r = ctx
                .timed(c.lease_revoke(id))
                .await
                .map_err(|e| CtlError::new(exit::ERROR, format!("failed to revoke lease ({e})")))?;
            match ctx.fmt {
                Format::Json => println!(
                    "{}",
                    json::Obj::new()
                        .opt("header", json::header(r.header.as_ref()))
                        .end()
                ),
                Format::Fields => {
                    let mut s = String::new();
                    fields_hdr(&mut s, r.header.as_ref());
                    print!("{s}");
                }
                Format::Protobuf => print_pb(&r),
                Format::Table => return Err(ctx.unsupported()),
                Format::Simple => println!("lease {id:016x} revoked"),
            }
        }
        LeaseCmd::Timetolive { id, keys } => {
            let id = super::parse_lease(&id)?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.lease_time_to_live(id, keys)).await?;
            match ctx.fmt {
                Format::Json => {
                    let ks = if r.keys.is_empty() {
                        "null".to_string()
                    } else {
                        json::arr(r.keys.iter().map(|k| json::b64(k)))
                    };
                    println!(
                        "{}",
                        flat(r.header.as_ref())
                            .num_always("id", r.id)
                            .num_always("ttl", r.ttl)
                            .num_always("granted-ttl", r.granted_ttl)
                            .raw("keys", ks)
                            .end()
                    )
                }
                Format::Fields => {
                    let mut s = String::new();
                    fields_hdr(&mut s, r.header.as_ref());
                    s.push_str(&format!(
                        "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                        r.id, r.ttl, r.granted_ttl
                    ));
                    for k in &r.keys {
                        s.push_str(&format!("\"Key\" : {}\n", crate::fmt::quote(k)));
                    }
                    print!("{s}");
                }
                Format::Protobuf => print_pb(&r),
                Format::Table => return Err(ctx.unsupported()),
                Format::Simple => {
                    if r.granted_ttl == 0 && r.ttl == -1 {
                        println!("lease {:016x} already expired", r.id);
                    } else {
                        let mut line = format!(
                            "lease {:016x} granted with TTL({}s), remaining({}s)",
                            r.id, r.granted_ttl, r.ttl
                        );
                        if keys {
                            let ks: Vec<String> = r
                                .keys
                                .iter()
                                .map(|k| String::from_utf8_lossy(k).into_owned())
                                .collect();
                            line.push_str(&format!(", attached keys([{}])", ks.join(" ")));
                        }
                        println!("{line}");
                    }
                }
            }
        }
        LeaseCmd::List => {
            let c = ctx.client().await?;
            let r = ctx
                .timed(c.lease_leases())
                .await
                .map_err(|e| CtlError::new(exit::ERROR, format!("failed to list leases ({e})")))?;
            match ctx.fmt {
                Format::Json => {
                    let ls = json::arr(
                        r.leases
                            .iter()
                            .map(|l| json::Obj::new().num_always("id", l.id).end()),
                    );
                    println!("{}", flat(r.header.as_ref()).raw("leases", ls).end())
                }
                Format::Fields => {
                    let mut s = String::new();
                    fields_hdr(&mut s, r.header.as_ref());
                    for l in &r.leases {
                        s.push_str(&format!("\"ID\" : {}\n", l.id));
                    }
                    print!("{s}");
                }
                Format::Protobuf => print_pb(&r),
                Format::Table => return Err(ctx.unsupported()),
                Format::Simple => {
                    println!("found {} leases", r.leases.len());
                    for l in &r.leases {
                        println!("{:016x}", l.id);
                    }
                }
            }
        }
        LeaseCmd::KeepAlive { id, once } => {
            let id = super::parse_lease(&id)?;
            let c = ctx.client().await?;
            let print = |ttl: i64| match ctx.fmt {
                Format::Json => println!(
                    "{}",
                    json::Obj::new()
                        .num_always("ID", id)
                        .num_always("TTL", ttl)
                        .end()
                ),
                _ => println!("lease {id:016x} keepalived with TTL({ttl})"),
            };
            let mut ka = match c.lease_keep_alive(id).await {
                Ok(ka) => ka,
                Err(oxcd_client::Error::LeaseExpired(_)) => {
                    if once {
                        return Err(CtlError::new(
                            exit::ERROR,
                            format!("lease {id:016x} expired or revoked."),
                        ));
                    }
                    println!("lease {id:016x} expired or revoked.");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            let ttl = c.lease_time_to_live(id, false).await?.ttl;
            print(ttl.max(1));
            if once {
                return Ok(());
            }
            let granted = c.lease_time_to_live(id, false).await?.granted_ttl.max(3);
            loop {
                tokio::time::sleep(std::time::Duration::from_secs((granted / 3).max(1) as u64))
                    .await;
                match ka.keep_alive().await {
                    Ok(ttl) => print(ttl),
                    Err(_) => {
                        println!("lease {id:016x} expired or revoked.");
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}
