//! gRPC server metrics with go-grpc-prometheus's names, as etcd exports them:
//! `grpc_server_started_total`, `grpc_server_handled_total` (by `grpc_code`),
//! `grpc_server_msg_received_total`-class counters are not kept; plus etcd's
//! `etcd_network_client_grpc_received_bytes_total` / `sent_bytes_total`; with
//! `--metrics=extensive`, `grpc_server_handling_seconds` (start to end of each call).
//!
//! A tower layer around the client routes: it counts a call when it starts and, when its
//! response ends, with the `grpc-status` found in the trailers (or in the headers of a
//! trailers-only response). Invariant: every started call that ends is counted as handled
//! exactly once, whatever its outcome.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::{
    register_counter, register_counter_vec, register_histogram_vec, Counter, CounterVec,
    HistogramVec,
};

static STARTED: LazyLock<CounterVec> = LazyLock::new(|| {
    register_counter_vec!(
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
        &["grpc_type", "grpc_service", "grpc_method"]
    )
    .expect("registering grpc_server_started_total")
});
static HANDLED: LazyLock<CounterVec> = LazyLock::new(|| {
    register_counter_vec!(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        &["grpc_type", "grpc_service", "grpc_method", "grpc_code"]
    )
    .expect("registering grpc_server_handled_total")
});
static SENT_BYTES: LazyLock<Counter> = LazyLock::new(|| {
    register_counter!(
        "etcd_network_client_grpc_sent_bytes_total",
        "The total number of bytes sent to grpc clients."
    )
    .expect("registering etcd_network_client_grpc_sent_bytes_total")
});
static RECEIVED_BYTES: LazyLock<Counter> = LazyLock::new(|| {
    register_counter!(
        "etcd_network_client_grpc_received_bytes_total",
        "The total number of bytes received from grpc clients."
    )
    .expect("registering etcd_network_client_grpc_received_bytes_total")
});

static EXTENSIVE: AtomicBool = AtomicBool::new(false);
static HANDLING: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        &["grpc_type", "grpc_service", "grpc_method"],
        prometheus::DEFAULT_BUCKETS.to_vec()
    )
    .expect("registering grpc_server_handling_seconds")
});

/// `--metrics=extensive`: also export `grpc_server_handling_seconds`.
pub fn set_extensive(on: bool) {
    EXTENSIVE.store(on, Ordering::Release);
    if on {
        LazyLock::force(&HANDLING);
    }
}

/// gRPC's code names, as go-grpc-prometheus labels them.
fn code_name(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The streaming kind of a method, as go-grpc-prometheus's `grpc_type`.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot")
        | ("v3electionpb.Election", "Observe")
        | ("etcdserverpb.KV", "RangeStream") => "server_stream",
        _ => "unary",
    }
}

/// Registers the counters (so they are listed before the first call).
pub fn init() {
    LazyLock::force(&STARTED);
    LazyLock::force(&HANDLED);
    SENT_BYTES.inc_by(0.0);
    RECEIVED_BYTES.inc_by(0.0);
}

/// The layer: wrap the client routes with it.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// The labels of one call.
#[derive(Clone)]
struct Call {
    kind: &'static str,
    service: String,
    method: String,
    started: Instant,
}

impl Call {
    fn handled(&self, code: &str) {
        HANDLED
            .with_label_values(&[self.kind, &self.service, &self.method, code_name(code)])
            .inc();
        if EXTENSIVE.load(Ordering::Acquire) {
            HANDLING
                .with_label_values(&[self.kind, &self.service, &self.method])
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    RB: Body<Data = Bytes>,
{
    type Response = http::Response<CountedBody<RB>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut parts = req.uri().path().trim_start_matches('/').splitn(2, '/');
        let service = parts.next().unwrap_or_default().to_string();
        let method = parts.next().unwrap_or_default().to_string();
        let call = Call {
            kind: grpc_type(&service, &method),
            service,
            method,
            started: Instant::now(),
        };
        STARTED
            .with_label_values(&[call.kind, &call.service, &call.method])
            .inc();
        if let Some(n) = req.body().size_hint().exact() {
            RECEIVED_BYTES.inc_by(n as f64);
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // A trailers-only response (an error before any message) carries the status
            // in its headers.
            let done = match resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
            {
                Some(code) => {
                    call.handled(code);
                    true
                }
                None => false,
            };
            Ok(resp.map(|inner| CountedBody {
                inner,
                call: (!done).then_some(call),
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its bytes and reports the call's status at its end.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for CountedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Ended without trailers (the client went away): go-grpc-prometheus counts
            // the context's error, Canceled.
            if let Some(call) = this.project().call.take() {
                call.handled("1");
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                SENT_BYTES.inc_by(data.len() as f64);
            } else if let Some(trailers) = frame.trailers_ref() {
                let code = trailers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0");
                if let Some(call) = this.call.take() {
                    call.handled(code);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
