//! The built-in web dashboard at `/ui/` (an oxcd addition; etcd has none): static HTML, CSS
//! and JavaScript modules from `crates/http/ui/`, compiled into the binary.
//!
//! Invariants:
//! - Nothing is fetched at run time and nothing is generated: every answer is one of the
//!   [`ASSETS`], byte for byte, with its content type. An unknown `/ui/...` path is the
//!   router's JSON 404, and so is every `/ui` path when the dashboard is off
//!   ([`crate::HttpConfig::enable_ui`]): the routes are then not registered at all.
//! - The pages talk to the server only through the JSON gateway (`/v3/...`) and `/metrics`,
//!   with the user's own token, so they can do exactly what that user could do with etcdctl.
//!   This module adds no endpoint of its own beyond the files.
//! - Every answer carries a Content-Security-Policy that allows this origin only (no inline
//!   script or style, no other host), so a value shown on a page can never run as code.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::Router;

/// Self only; `data:` images for the favicon-less tab; no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// `(file name under /ui/, content type, bytes)`. A unit test checks that this lists exactly
/// the files of `crates/http/ui/`.
pub(crate) const ASSETS: &[(&str, &str, &[u8])] = &[
    ("index.html", HTML, include_bytes!("../ui/index.html")),
    ("style.css", CSS, include_bytes!("../ui/style.css")),
    ("app.js", JS, include_bytes!("../ui/app.js")),
    ("api.js", JS, include_bytes!("../ui/api.js")),
    ("dom.js", JS, include_bytes!("../ui/dom.js")),
    ("cluster.js", JS, include_bytes!("../ui/cluster.js")),
    ("keys.js", JS, include_bytes!("../ui/keys.js")),
    ("diff.js", JS, include_bytes!("../ui/diff.js")),
    ("watch.js", JS, include_bytes!("../ui/watch.js")),
    ("leases.js", JS, include_bytes!("../ui/leases.js")),
    ("perf.js", JS, include_bytes!("../ui/perf.js")),
    ("prom.js", JS, include_bytes!("../ui/prom.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

fn asset_response(name: &str) -> Option<Response<Body>> {
    let (_, ctype, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    let mut r = Response::new(Body::from(*bytes));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary: always revalidate so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

async fn index() -> Response<Body> {
    asset_response("index.html").unwrap_or_else(|| Response::new(Body::empty()))
}

async fn asset(Path(name): Path<String>) -> Response<Body> {
    match asset_response(&name) {
        Some(r) => r,
        None => crate::error::not_found().await,
    }
}

/// `/ui` → `/ui/`, so the pages' relative module paths resolve under `/ui/`.
async fn redirect() -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
    r
}

/// The dashboard's routes (register them only when the dashboard is on).
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/ui", get(redirect))
        .route("/ui/", get(index))
        .route("/ui/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> Response<Body> {
        let req = http::Request::get(path).body(Body::empty()).unwrap();
        router.oneshot(req).await.unwrap()
    }

    fn routed(enable_ui: bool) -> Router {
        let cfg = crate::HttpConfig {
            enable_ui,
            ..Default::default()
        };
        crate::router(tonic::service::Routes::default(), cfg)
    }

    fn metrics_routed(enable_ui: bool) -> Router {
        let cfg = crate::HttpConfig {
            enable_ui,
            ..Default::default()
        };
        crate::metrics_router(tonic::service::Routes::default(), cfg)
    }

    fn ctype(r: &Response<Body>) -> &str {
        r.headers()[header::CONTENT_TYPE].to_str().unwrap()
    }

    #[tokio::test]
    async fn assets_have_their_content_types_and_a_strict_csp() {
        for router in [routed(true), metrics_routed(true)] {
            let r = get(router.clone(), "/ui/").await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(ctype(&r), HTML);
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe"));
            let body = r.into_body().collect().await.unwrap().to_bytes();
            assert!(std::str::from_utf8(&body).unwrap().contains("app.js"));

            for (path, want) in [
                ("/ui/app.js", JS),
                ("/ui/style.css", CSS),
                ("/ui/index.html", HTML),
            ] {
                let r = get(router.clone(), path).await;
                assert_eq!(r.status(), StatusCode::OK, "{path}");
                assert_eq!(ctype(&r), want, "{path}");
                assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            }
            let r = get(router.clone(), "/ui/nope.js").await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
            let r = get(router.clone(), "/ui/../Cargo.toml").await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn bare_ui_redirects_to_the_slash() {
        let r = get(routed(true), "/ui").await;
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(r.headers()[header::LOCATION], "/ui/");
    }

    #[tokio::test]
    async fn disabled_ui_is_not_found() {
        for router in [routed(false), metrics_routed(false)] {
            for path in ["/ui", "/ui/", "/ui/app.js"] {
                let r = get(router.clone(), path).await;
                assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
                assert_eq!(ctype(&r), "application/json");
            }
        }
    }

    /// The table serves every file of `ui/` and nothing that is not there, so a new file
    /// cannot be forgotten (the page would fail to load a module).
    #[test]
    fn assets_are_the_ui_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }
}
