//! The seed application's flow: an HTTP webhook service whose routes live in etcd/oxcd under
//! `/cwm/{namespace}/webhooks/{id}` and change live (`oxcdctl put` / `oxcdctl del`), no restart.
//!
//! ```text
//! cargo run -p oxcd-client --example webhooks -- 127.0.0.1:2379 127.0.0.1:8000
//! oxcdctl put /cwm/production/webhooks/github_events '{"module":"log"}'
//! curl -X POST http://127.0.0.1:8000/webhook/production/github_events -d '{"a":1}'
//! oxcdctl del /cwm/production/webhooks/github_events      # now 404
//! curl http://127.0.0.1:8000/health                       # cache health
//! ```
//!
//! Environment: `ETCD_PREFIX` (default `/cwm/`), `ETCD_NAMESPACE` (default `default`, for
//! `POST /webhook/{id}`).
//!
//! Invariant: every request is answered from the in-memory cache (one hash lookup); etcd is
//! only read by the cache's list and watch.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oxcd_client::cache::{validate_namespace, CacheBuilder, ChangeKind, ConfigCache};
use oxcd_client::Client;
use serde_json::{json, Value};

struct App {
    cache: ConfigCache<Value>,
    prefix: String,
    default_ns: String,
}

type Reply = (StatusCode, Json<Value>);

fn dispatch(app: &App, ns: &str, id: &str, body: &str) -> Reply {
    if let Err(e) = validate_namespace(ns) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        );
    }
    let key = format!("{}{ns}/webhooks/{id}", app.prefix);
    match app.cache.get(&key) {
        Some(cfg) => (
            StatusCode::OK,
            Json(json!({
                "status": "accepted",
                "namespace": ns,
                "webhook": id,
                "module": cfg.get("module").cloned().unwrap_or(Value::Null),
                "bytes": body.len(),
            })),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("webhook {id:?} not found in namespace {ns:?}") })),
        ),
    }
}

async fn namespaced(
    State(app): State<Arc<App>>,
    Path((ns, id)): Path<(String, String)>,
    body: String,
) -> Reply {
    dispatch(&app, &ns, &id, &body)
}

async fn default_route(State(app): State<Arc<App>>, Path(id): Path<String>, body: String) -> Reply {
    dispatch(&app, &app.default_ns, &id, &body)
}

async fn health(State(app): State<Arc<App>>) -> Reply {
    let h = app.cache.health();
    (
        if h.connected {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "connected": h.connected,
            "revision": h.revision,
            "lag": h.lag,
            "reconnects": h.reconnects,
            "relists": h.relists,
            "keys": app.cache.len(),
            "invalid": h.invalid.keys().collect::<Vec<_>>(),
            "last_error": h.last_error,
        })),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoints = args.next().unwrap_or_else(|| "127.0.0.1:2379".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8000".into());
    let prefix = std::env::var("ETCD_PREFIX").unwrap_or_else(|_| "/cwm/".into());
    let default_ns = std::env::var("ETCD_NAMESPACE").unwrap_or_else(|_| "default".into());
    validate_namespace(&default_ns)?;

    let client = Client::connect([endpoints.as_str()]).await?;
    let cache = CacheBuilder::<Value>::json(prefix.clone())
        .on_prefix(prefix.clone(), |c| match &c.kind {
            ChangeKind::Put(_) => println!("route updated: {} (revision {})", c.key, c.revision),
            ChangeKind::Delete => println!("route removed: {} (revision {})", c.key, c.revision),
            ChangeKind::Invalid(e) => println!(
                "rejected {} (revision {}): {e}; keeping the last good config",
                c.key, c.revision
            ),
        })
        .start(&client)
        .await?;
    println!(
        "loaded {} keys under {prefix} at revision {}",
        cache.len(),
        cache.health().revision
    );

    let app = Arc::new(App {
        cache,
        prefix,
        default_ns,
    });
    let router = Router::new()
        .route("/webhook/{ns}/{id}", post(namespaced))
        .route("/webhook/{id}", post(default_route))
        .route("/health", get(health))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
