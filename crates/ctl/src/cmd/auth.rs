//! auth enable|disable|status, user *, role * (simple output; `-w json` prints the
//! response header like etcdctl's JSON printer).
//!
//! Invariant: passwords are taken from `user:password`, `--new-user-password` or one line
//! of stdin (`--interactive=false`); oxcdctl never echoes them.

use std::io::BufRead;

use oxcd_client::{prefix_end, PermissionType};

use oxcd_client::pb;

use super::kv::fields_hdr;
use super::{bad_args, print_pb, Ctx, Format};
use crate::cli::{AuthCmd, RoleCmd, UserCmd};
use crate::fmt::quote;
use crate::{exit, json, CtlError, CtlResult};

fn read_password(prompt: &str) -> CtlResult<String> {
    eprint!("{prompt}");
    let mut s = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut s)
        .map_err(|e| CtlError::new(exit::IO, e.to_string()))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn auth(ctx: &Ctx, cmd: AuthCmd) -> CtlResult {
    let c = ctx.client().await?;
    match cmd {
        AuthCmd::Enable => {
            // etcdctl: when root lacks the root role, add the role, grant it, try again.
            // Both print one line whatever the `-w` format.
            let mut tries = 0;
            loop {
                match ctx.timed(c.auth_enable()).await {
                    Ok(_) => break,
                    Err(CtlError::Client(e))
                        if tries == 0
                            && e.message().is_some_and(|m| {
                                m.contains("root user does not have root role")
                            }) =>
                    {
                        tries += 1;
                        ctx.timed(c.role_add("root")).await?;
                        ctx.timed(c.user_grant_role("root", "root")).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
            println!("Authentication Enabled");
        }
        AuthCmd::Disable => {
            ctx.timed(c.auth_disable()).await?;
            println!("Authentication Disabled");
        }
        AuthCmd::Status => {
            let r = ctx.timed(c.auth_status()).await?;
            println!(
                "Authentication Status: {}\nAuthRevision: {}",
                r.enabled, r.auth_revision
            );
        }
    }
    Ok(())
}

/// Print an auth response: JSON is the header plus `json` fields, protobuf the message,
/// `fields` the header plus `fields` lines (unsupported when `None`, as in etcdctl), table
/// unsupported, simple by `simple`.
fn show<M: prost::Message>(
    ctx: &Ctx,
    r: &M,
    h: Option<&pb::ResponseHeader>,
    json_fields: impl FnOnce(json::Obj) -> json::Obj,
    fields: Option<&dyn Fn(&mut String)>,
    simple: impl FnOnce(),
) -> CtlResult {
    match ctx.fmt {
        Format::Json => {
            let o = json::Obj::new().opt("header", json::header(h));
            println!("{}", json_fields(o).end());
        }
        Format::Protobuf => print_pb(r),
        Format::Table => return Err(ctx.unsupported()),
        Format::Fields => {
            let Some(f) = fields else {
                return Err(ctx.unsupported());
            };
            let mut s = String::new();
            fields_hdr(&mut s, h);
            f(&mut s);
            print!("{s}");
        }
        Format::Simple => simple(),
    }
    Ok(())
}

/// A header-only response's printer: simple prints `line`.
fn show_hdr<M: prost::Message>(
    ctx: &Ctx,
    r: &M,
    h: Option<&pb::ResponseHeader>,
    line: String,
) -> CtlResult {
    show(ctx, r, h, |o| o, Some(&|_| {}), || println!("{line}"))
}

fn strs(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| json::arr(v.iter().map(|x| json::s(x))))
}

fn one(args: &[String], msg: &str) -> CtlResult<String> {
    match args {
        [a] => Ok(a.clone()),
        _ => Err(bad_args(msg)),
    }
}

fn two(args: &[String], msg: &str) -> CtlResult<(String, String)> {
    match args {
        [a, b] => Ok((a.clone(), b.clone())),
        _ => Err(bad_args(msg)),
    }
}

/// etcdctl's `fmt.Scanf("%s")`: the first whitespace-separated word of stdin.
fn scan_word() -> CtlResult<String> {
    let s = read_password("")?;
    Ok(s.split_whitespace().next().unwrap_or("").to_string())
}

pub async fn user(ctx: &Ctx, cmd: UserCmd) -> CtlResult {
    match cmd {
        UserCmd::Add {
            args,
            interactive,
            no_password,
            new_user_password,
        } => {
            let arg = one(&args, "user add command requires user name as its argument")?;
            let (name, pass) = if no_password {
                (arg, None)
            } else if !new_user_password.is_empty() {
                (arg, Some(new_user_password))
            } else if let Some((n, p)) = arg.split_once(':') {
                if n.is_empty() {
                    return Err(bad_args("empty user name is not allowed"));
                }
                (n.to_string(), Some(p.to_string()))
            } else if !interactive {
                (arg, Some(scan_word()?))
            } else {
                let p = read_password(&format!("Password of {arg}: "))?;
                if p.is_empty() {
                    return Err(bad_args("empty password"));
                }
                let again =
                    read_password(&format!("Type password of {arg} again for confirmation: "))?;
                if p != again {
                    return Err(bad_args("given passwords are different"));
                }
                (arg, Some(p))
            };
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_add(&name, pass.as_deref())).await?;
            show_hdr(ctx, &r, r.header.as_ref(), format!("User {name} created"))
        }
        UserCmd::Delete { args } => {
            let name = one(
                &args,
                "user delete command requires user name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_delete(&name)).await?;
            show_hdr(ctx, &r, r.header.as_ref(), format!("User {name} deleted"))
        }
        UserCmd::Get { args, detail } => {
            let name = one(&args, "user get command requires user name as its argument")?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_get(&name)).await?;
            if detail {
                println!("User: {name}");
                for role in &r.roles {
                    println!();
                    let rr = ctx.timed(c.role_get(role)).await?;
                    show_role(ctx, role, &rr)?;
                }
                return Ok(());
            }
            show(
                ctx,
                &r,
                r.header.as_ref(),
                |o| o.opt("roles", strs(&r.roles)),
                None,
                || {
                    println!("User: {name}");
                    println!(
                        "Roles:{}",
                        r.roles.iter().map(|x| format!(" {x}")).collect::<String>()
                    );
                },
            )
        }
        UserCmd::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("user list command requires no arguments"));
            }
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_list()).await?;
            show(
                ctx,
                &r,
                r.header.as_ref(),
                |o| o.opt("users", strs(&r.users)),
                None,
                || r.users.iter().for_each(|u| println!("{u}")),
            )
        }
        UserCmd::Passwd { args, interactive } => {
            let name = one(
                &args,
                "user passwd command requires user name as its argument",
            )?;
            let p = if interactive {
                let p = read_password(&format!("Password of {name}: "))?;
                if p.is_empty() {
                    return Err(bad_args("empty password"));
                }
                let again =
                    read_password(&format!("Type password of {name} again for confirmation: "))?;
                if p != again {
                    return Err(bad_args("given passwords are different"));
                }
                p
            } else {
                scan_word()?
            };
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_change_password(&name, &p)).await?;
            show_hdr(ctx, &r, r.header.as_ref(), "Password updated".into())
        }
        UserCmd::GrantRole { args } => {
            let (user, role) = two(
                &args,
                "user grant command requires user name and role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_grant_role(&user, &role)).await?;
            show_hdr(
                ctx,
                &r,
                r.header.as_ref(),
                format!("Role {role} is granted to user {user}"),
            )
        }
        UserCmd::RevokeRole { args } => {
            let (user, role) = two(
                &args,
                "user revoke-role requires user name and role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.user_revoke_role(&user, &role)).await?;
            show_hdr(
                ctx,
                &r,
                r.header.as_ref(),
                format!("Role {role} is revoked from user {user}"),
            )
        }
    }
}

fn perm_name(t: i32) -> &'static str {
    match t {
        1 => "WRITE",
        2 => "READWRITE",
        _ => "READ",
    }
}

fn show_role(ctx: &Ctx, role: &str, r: &pb::AuthRoleGetResponse) -> CtlResult {
    let perms = || {
        (!r.perm.is_empty()).then(|| {
            json::arr(r.perm.iter().map(|p| {
                json::Obj::new()
                    .num("permType", p.perm_type)
                    .bytes("key", &p.key)
                    .bytes("range_end", &p.range_end)
                    .end()
            }))
        })
    };
    let fields = |s: &mut String| {
        for p in &r.perm {
            s.push_str(&format!("\"PermType\" :  {}\n", perm_name(p.perm_type)));
            s.push_str(&format!("\"Key\" : {}\n", quote(&p.key)));
            s.push_str(&format!("\"RangeEnd\" : {}\n", quote(&p.range_end)));
        }
    };
    show(
        ctx,
        r,
        r.header.as_ref(),
        |o| o.opt("perm", perms()),
        Some(&fields),
        || print_role(role, r),
    )
}

fn print_role(role: &str, r: &pb::AuthRoleGetResponse) {
    println!("Role {role}");
    let show = |want: &[i32]| {
        for p in &r.perm {
            if !want.contains(&p.perm_type) {
                continue;
            }
            let k = String::from_utf8_lossy(&p.key);
            if p.range_end.is_empty() {
                println!("\t{k}");
                continue;
            }
            let e = String::from_utf8_lossy(&p.range_end);
            let mut line = if p.range_end != [0] {
                format!("\t[{k}, {e})")
            } else {
                format!("\t[{k}, <open ended>")
            };
            if prefix_end(&p.key) == p.range_end {
                line.push_str(&format!(" (prefix {k})"));
            }
            println!("{line}");
        }
    };
    println!("KV Read:");
    show(&[
        PermissionType::Read as i32,
        PermissionType::Readwrite as i32,
    ]);
    println!("KV Write:");
    show(&[
        PermissionType::Write as i32,
        PermissionType::Readwrite as i32,
    ]);
}

/// etcdctl's `permRange`: the key and range end from `<key> [endkey]` and the flags.
fn perm_range(args: &[String], prefix: bool, from_key: bool) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    let key = &args[0];
    if key.is_empty() {
        if prefix && from_key {
            return Err(bad_args(
                "--from-key and --prefix flags are mutually exclusive",
            ));
        }
        // The empty prefix: every key, as ["\x00", "\x00").
        let end = if prefix || from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    let end = match (args.get(1), prefix, from_key) {
        (None, true, true) => {
            return Err(bad_args(
                "--from-key and --prefix flags are mutually exclusive",
            ))
        }
        (None, true, false) => prefix_end(key.as_bytes()),
        (None, false, true) => vec![0],
        (None, false, false) => Vec::new(),
        (Some(_), true, _) => {
            return Err(bad_args("unexpected endkey argument with --prefix flag"))
        }
        (Some(_), _, true) => {
            return Err(bad_args("unexpected endkey argument with --from-key flag"))
        }
        (Some(e), false, false) => e.clone().into_bytes(),
    };
    Ok((key.clone().into_bytes(), end))
}

pub async fn role(ctx: &Ctx, cmd: RoleCmd) -> CtlResult {
    match cmd {
        RoleCmd::Add { args } => {
            let name = one(&args, "role add command requires role name as its argument")?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.role_add(&name)).await?;
            show_hdr(ctx, &r, r.header.as_ref(), format!("Role {name} created"))
        }
        RoleCmd::Delete { args } => {
            let name = one(
                &args,
                "role delete command requires role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.role_delete(&name)).await?;
            show_hdr(ctx, &r, r.header.as_ref(), format!("Role {name} deleted"))
        }
        RoleCmd::Get { args } => {
            let name = one(&args, "role get command requires role name as its argument")?;
            let c = ctx.client().await?;
            let r = ctx.timed(c.role_get(&name)).await?;
            show_role(ctx, &name, &r)
        }
        RoleCmd::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("role list command requires no arguments"));
            }
            let c = ctx.client().await?;
            let r = ctx.timed(c.role_list()).await?;
            let fields = |s: &mut String| {
                s.push_str("\"Roles\" :");
                for role in &r.roles {
                    s.push_str(&format!(" {}", quote(role.as_bytes())));
                }
                s.push('\n');
            };
            show(
                ctx,
                &r,
                r.header.as_ref(),
                |o| o.opt("roles", strs(&r.roles)),
                Some(&fields),
                || r.roles.iter().for_each(|x| println!("{x}")),
            )
        }
        RoleCmd::GrantPermission {
            args,
            prefix,
            from_key,
        } => {
            if args.len() < 3 {
                return Err(bad_args("role grant command requires role name, permission type, and key [endkey] as its argument"));
            }
            let t = match args[1].to_ascii_uppercase().as_str() {
                "READ" => PermissionType::Read,
                "WRITE" => PermissionType::Write,
                "READWRITE" => PermissionType::Readwrite,
                _ => return Err(bad_args(format!("invalid permission type: {}", args[1]))),
            };
            let (key, end) = perm_range(&args[2..], prefix, from_key)?;
            let role = &args[0];
            let c = ctx.client().await?;
            let r = ctx
                .timed(c.role_grant_permission(role, t, key, end))
                .await?;
            show_hdr(ctx, &r, r.header.as_ref(), format!("Role {role} updated"))
        }
        RoleCmd::RevokePermission {
            args,
            prefix,
            from_key,
        } => {
            if args.len() < 2 {
                return Err(bad_args("role revoke-permission command requires role name and key [endkey] as its argument"));
            }
            let (key, end) = perm_range(&args[1..], prefix, from_key)?;
            let role = &args[0];
            let c = ctx.client().await?;
            let r = ctx
                .timed(c.role_revoke_permission(role, key, end.clone()))
                .await?;
            let k = &args[1];
            let line = if end.is_empty() {
                format!("Permission of key {k} is revoked from role {role}")
            } else if end != [0] {
                format!(
                    "Permission of range [{k}, {}) is revoked from role {role}",
                    String::from_utf8_lossy(&end)
                )
            } else {
                format!("Permission of range [{k}, <open ended> is revoked from role {role}")
            };
            show_hdr(ctx, &r, r.header.as_ref(), line)
        }
    }
}
