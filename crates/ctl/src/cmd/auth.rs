//! auth enable|disable|status, user *, role * (simple output; `-w json` prints the
//! response header like etcdctl's JSON printer).
//!
//! Invariant: passwords are taken from `user:password`, `--new-user-password` or one line
//! of stdin (`--interactive=false`); oxcdctl never echoes them.

use std::io::BufRead;

use oxcd_client::{prefix_end, PermissionType};

use super::{bad_args, Ctx, Format};
use crate::cli::{AuthCmd, RoleCmd, UserCmd};
use crate::{exit, json, CtlError, CtlResult};

fn hdr_json(ctx: &Ctx, h: Option<&oxcd_client::pb::ResponseHeader>) -> bool {
    if ctx.fmt == Format::Json {
        println!("{}", json::Obj::new().opt("header", json::header(h)).end());
        true
    } else {
        false
    }
}

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
            let r = ctx.timed(c.auth_enable()).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Authentication Enabled");
            }
        }
        AuthCmd::Disable => {
            let r = ctx.timed(c.auth_disable()).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Authentication Disabled");
            }
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

pub async fn user(ctx: &Ctx, cmd: UserCmd) -> CtlResult {
    let c = ctx.client().await?;
    match cmd {
        UserCmd::Add {
            user,
            interactive,
            no_password,
            new_user_password,
        } => {
            let (name, pass) = match user.split_once(':') {
                Some((n, p)) => (n.to_string(), Some(p.to_string())),
                None if no_password => (user.clone(), None),
                None => match new_user_password {
                    Some(p) => (user.clone(), Some(p)),
                    None if !interactive => (user.clone(), Some(read_password("")?)),
                    None => {
                        let p = read_password("Password of ".to_string().as_str())?;
                        (user.clone(), Some(p))
                    }
                },
            };
            let r = ctx.timed(c.user_add(&name, pass.as_deref())).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("User {name} created");
            }
        }
        UserCmd::Delete { name } => {
            let r = ctx.timed(c.user_delete(&name)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("User {name} deleted");
            }
        }
        UserCmd::Get { name, detail } => {
            let r = ctx.timed(c.user_get(&name)).await?;
            if hdr_json(ctx, r.header.as_ref()) {
                return Ok(());
            }
            println!("User: {name}");
            if !detail {
                let mut line = String::from("Roles:");
                for role in &r.roles {
                    line.push(' ');
                    line.push_str(role);
                }
                println!("{line}");
            } else {
                for role in &r.roles {
                    println!();
                    print_role(role, &ctx.timed(c.role_get(role)).await?);
                }
            }
        }
        UserCmd::List => {
            let r = ctx.timed(c.user_list()).await?;
            for u in &r.users {
                println!("{u}");
            }
        }
        UserCmd::Passwd { name, interactive } => {
            let p = read_password(if interactive {
                "Password of user: "
            } else {
                ""
            })?;
            let r = ctx.timed(c.user_change_password(&name, &p)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Password updated");
            }
        }
        UserCmd::GrantRole { user, role } => {
            let r = ctx.timed(c.user_grant_role(&user, &role)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Role {role} is granted to user {user}");
            }
        }
        UserCmd::RevokeRole { user, role } => {
            let r = ctx.timed(c.user_revoke_role(&user, &role)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Role {role} is revoked from user {user}");
            }
        }
    }
    Ok(())
}

fn print_role(role: &str, r: &oxcd_client::pb::AuthRoleGetResponse) {
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

fn perm_range(key: &str, end: Option<String>, prefix: bool, from_key: bool) -> CtlResult<Vec<u8>> {
    if prefix && from_key {
        return Err(bad_args(
            "--from-key and --prefix flags are mutually exclusive",
        ));
    }
    Ok(match (end, prefix, from_key) {
        (Some(_), true, _) | (Some(_), _, true) => {
            return Err(bad_args(
                "unexpected endkey argument with --prefix/--from-key",
            ))
        }
        (Some(e), _, _) => e.into_bytes(),
        (None, true, _) => prefix_end(key.as_bytes()),
        (None, _, true) => vec![0],
        (None, false, false) => Vec::new(),
    })
}

pub async fn role(ctx: &Ctx, cmd: RoleCmd) -> CtlResult {
    let c = ctx.client().await?;
    match cmd {
        RoleCmd::Add { name } => {
            let r = ctx.timed(c.role_add(&name)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Role {name} created");
            }
        }
        RoleCmd::Delete { name } => {
            let r = ctx.timed(c.role_delete(&name)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Role {name} deleted");
            }
        }
        RoleCmd::Get { name } => {
            let r = ctx.timed(c.role_get(&name)).await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                print_role(&name, &r);
            }
        }
        RoleCmd::List => {
            let r = ctx.timed(c.role_list()).await?;
            for role in &r.roles {
                println!("{role}");
            }
        }
        RoleCmd::GrantPermission {
            role,
            perm_type,
            key,
            range_end,
            prefix,
            from_key,
        } => {
            let t = match perm_type.to_ascii_lowercase().as_str() {
                "read" => PermissionType::Read,
                "write" => PermissionType::Write,
                "readwrite" => PermissionType::Readwrite,
                other => return Err(bad_args(format!("invalid permission type {other}"))),
            };
            let end = perm_range(&key, range_end, prefix, from_key)?;
            let r = ctx
                .timed(c.role_grant_permission(&role, t, key.into_bytes(), end))
                .await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                println!("Role {role} updated");
            }
        }
        RoleCmd::RevokePermission {
            role,
            key,
            range_end,
            prefix,
            from_key,
        } => {
            let end = perm_range(&key, range_end, prefix, from_key)?;
            let r = ctx
                .timed(c.role_revoke_permission(&role, key.clone().into_bytes(), end.clone()))
                .await?;
            if !hdr_json(ctx, r.header.as_ref()) {
                if end.is_empty() {
                    println!("Permission of key {key} is revoked from role {role}");
                } else {
                    println!(
                        "Permission of range [{key}, {}) is revoked from role {role}",
                        String::from_utf8_lossy(&end)
                    );
                }
            }
        }
    }
    Ok(())
}
