//! `/health` (etcd 3.4/3.5), `/livez` and `/readyz` (etcd 3.6, with per-check subpaths,
//! `?exclude=` and `?verbose`), and `/version`, all answered through the in-process gRPC
//! services.
//!
//! Invariants:
//! - `/health` is unhealthy on an active alarm (unless `?exclude=` names it), on no leader
//!   (Status reports leader 0), or when a Range of key `health` (serializable with
//!   `?serializable=true`) fails; an auth refusal of that Range still proves the server
//!   answers, so it counts as healthy (as etcd).
//! - Every check is bounded by [`HttpConfig::health_timeout`].

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tonic::Code;

use oxcd_api::etcdserverpb as pb;

use crate::clients::Clients;
use crate::error::json_bytes;
use crate::HttpConfig;

#[derive(Serialize)]
struct Health {
    health: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
}

/// The query's `key=value` pairs (values of repeated keys and comma lists flattened).
fn query(raw: &Option<String>) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for pair in raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let e = m.entry(k.to_string()).or_default();
        e.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string));
    }
    m
}

async fn with_timeout<T>(
    d: Duration,
    f: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(d, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err("context deadline exceeded".to_string()),
    }
}

async fn alarms(c: &Clients, d: Duration) -> Result<Vec<pb::AlarmMember>, String> {
    let mut m = c.maintenance.clone();
    let req = pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Get as i32,
        ..Default::default()
    };
    with_timeout(d, async move { m.alarm(req).await })
        .await
        .map(|r| r.into_inner().alarms)
}

/// A Range of key `health`; a refusal by auth still proves the read path works.
async fn read(c: &Clients, d: Duration, serializable: bool) -> Result<(), String> {
    let mut kv = c.kv.clone();
    let req = pb::RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    match tokio::time::timeout(d, kv.range(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(s))
            if s.code() == Code::PermissionDenied
                || s.message() == oxcd_api::EtcdError::UserEmpty.to_string() =>
        {
            Ok(())
        }
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err("context deadline exceeded".to_string()),
    }
}

fn alarm_name(a: i32) -> &'static str {
    match pb::AlarmType::try_from(a) {
        Ok(pb::AlarmType::Nospace) => "NOSPACE",
        Ok(pb::AlarmType::Corrupt) => "CORRUPT",
        _ => "UNKNOWN",
    }
}

async fn check_health(
    c: &Clients,
    d: Duration,
    q: &HashMap<String, Vec<String>>,
) -> Result<(), String> {
    let excluded = q.get("exclude").cloned().unwrap_or_default();
    let active = alarms(c, d).await.map_err(|e| format!("ALARM ERROR:{e}"))?;
    if let Some(a) = active
        .iter()
        .map(|a| alarm_name(a.alarm))
        .find(|n| !excluded.iter().any(|e| e == n))
    {
        return Err(format!("ALARM {a}"));
    }
    let mut m = c.maintenance.clone();
    let status = with_timeout(
        d,
        async move { m.status(pb::StatusRequest::default()).await },
    )
    .await
    .map_err(|e| format!("STATUS ERROR:{e}"))?;
    if status.into_inner().leader == 0 {
        return Err("RAFT NO LEADER".to_string());
    }
    let serializable = q
        .get("serializable")
        .is_some_and(|v| v.iter().any(|s| s == "true"));
    read(c, d, serializable)
        .await
        .map_err(|e| format!("RANGE ERROR:{e}"))
}

async fn health(c: Clients, d: Duration, raw: Option<String>) -> Response<Body> {
    let q = query(&raw);
    let (status, h) = match check_health(&c, d, &q).await {
        Ok(()) => (
            StatusCode::OK,
            Health {
                health: "true",
                reason: String::new(),
            },
        ),
        Err(reason) => {
            tracing::warn!(%reason, "/health error");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Health {
                    health: "false",
                    reason,
                },
            )
        }
    };
    json_bytes(status, serde_json::to_vec(&h).unwrap_or_default())
}

/// The checks of `/livez` or `/readyz`, in etcd 3.6's order.
fn checks(kind: &str) -> &'static [&'static str] {
    if kind == "livez" {
        &["serializable_read"]
    } else {
        &["data_corruption", "serializable_read", "linearizable_read"]
    }
}

async fn run_check(c: &Clients, d: Duration, name: &str) -> Result<(), String> {
    match name {
        "serializable_read" => read(c, d, true).await,
        "linearizable_read" => read(c, d, false).await,
        "data_corruption" => {
            let active = alarms(c, d).await?;
            match active
                .iter()
                .find(|a| a.alarm == pb::AlarmType::Corrupt as i32)
            {
                Some(_) => Err("alarm activated: CORRUPT".to_string()),
                None => Ok(()),
            }
        }
        _ => Err("unknown check".to_string()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `/livez` or `/readyz` (`only`: one check's subpath). Output as etcd 3.6 (Kubernetes'
/// healthz): `[+]name ok` / `[-]name failed: reason` lines, shown with `?verbose` or on
/// failure, then `ok` or `<kind> check failed`.
async fn probe(
    c: Clients,
    d: Duration,
    kind: &'static str,
    only: Option<String>,
    raw: Option<String>,
) -> Response<Body> {
    let q = query(&raw);
    let names: Vec<&str> = match &only {
        Some(n) => match checks(kind).iter().find(|c| **c == n.as_str()) {
            Some(c) => vec![*c],
            None => return text(StatusCode::NOT_FOUND, "404 page not found\n".to_string()),
        },
        None => checks(kind).to_vec(),
    };
    let excluded = q.get("exclude").cloned().unwrap_or_default();
    let mut out = String::new();
    let mut failed = false;
    for n in names {
        if excluded.iter().any(|e| e == n) {
            out.push_str(&format!("[+]{n} excluded: ok\n"));
            continue;
        }
        match run_check(&c, d, n).await {
            Ok(()) => out.push_str(&format!("[+]{n} ok\n")),
            Err(e) => {
                failed = true;
                out.push_str(&format!("[-]{n} failed: {e}\n"));
            }
        }
    }
    if failed {
        tracing::warn!(checks = %out.replace('\n', " "), "/{kind} failed");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{out}{kind} check failed\n"),
        );
    }
    let verbose = q.contains_key("verbose");
    text(
        StatusCode::OK,
        if verbose {
            format!("{out}ok\n")
        } else {
            "ok\n".to_string()
        },
    )
}

pub(crate) fn routes(clients: Clients, cfg: &HttpConfig) -> Router {
    let d = cfg.health_timeout;
    let version = serde_json::to_vec(&serde_json::json!({
        "etcdserver": cfg.server_version,
        "etcdcluster": cfg.cluster_version,
    }))
    .unwrap_or_default();
    let mut r = Router::new()
        .route(
            "/version",
            get(move || {
                let v = version.clone();
                async move { json_bytes(StatusCode::OK, v) }
            }),
        )
        .route(
            "/health",
            get({
                let c = clients.clone();
                move |RawQuery(q): RawQuery| health(c.clone(), d, q)
            }),
        );
    for kind in ["livez", "readyz"] {
        let c = clients.clone();
        r = r.route(
            &format!("/{kind}"),
            get(move |RawQuery(q): RawQuery| probe(c.clone(), d, kind, None, q)),
        );
        let c = clients.clone();
        r = r.route(
            &format!("/{kind}/{{check}}"),
            get(move |Path(check): Path<String>, RawQuery(q): RawQuery| {
                probe(c.clone(), d, kind, Some(check), q)
            }),
        );
    }
    r
}
