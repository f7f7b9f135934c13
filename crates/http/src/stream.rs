//! The gateway's streamed routes: `/v3/watch` and `/v3/lease/keepalive` (client and server
//! streams), `/v3/election/observe` and `/v3/maintenance/snapshot` (server streams). Each
//! response message goes out as one line `{"result":…}\n`, a failure after the stream started
//! as `{"error":{…}}\n`, as grpc-gateway writes them.
//!
//! Invariants:
//! - The request stream is the JSON values of the body, in order. For Watch it then stays open
//!   until the HTTP response is dropped (the client went away): etcd's watch keeps streaming
//!   after the gateway's CloseSend, and a closed request stream must not cancel watches. For
//!   LeaseKeepAlive it ends with the body, so the server answers each request and ends the
//!   stream, as etcd's gateway does.
//! - Dropping the HTTP response (client gone, connection closed) drops the gRPC response
//!   stream and ends the request stream: nothing in-process outlives the client.

use std::future::Future;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use oxcd_api::etcdserverpb as pb;
use oxcd_api::v3electionpb as elpb;

use crate::clients::Clients;
use crate::error::{error_response, json_bytes, status_response, stream_error_chunk, Reject};
use crate::gateway::{add, decode, decode_all, grpc_request, read_body, Caller};

/// `{"result":msg}\n`.
fn result_chunk<T: Serialize>(msg: &T) -> Result<bytes::Bytes, Status> {
    #[derive(Serialize)]
    struct Chunk<'a, T> {
        result: &'a T,
    }
    let mut v = serde_json::to_vec(&Chunk { result: msg })
        .map_err(|e| Status::internal(format!("encoding response: {e}")))?;
    v.push(b'\n');
    Ok(v.into())
}

/// The HTTP answer streaming `resp`; `guard` lives as long as the answer does.
fn stream_response<T, G>(resp: Streaming<T>, guard: G) -> Response<Body>
where
    T: Serialize + Send + 'static,
    G: Send + 'static,
{
    let lines = stream::unfold(Some((resp, guard)), |state| async move {
        let (mut resp, guard) = state?;
        match resp.next().await {
            None => None,
            Some(Ok(msg)) => match result_chunk(&msg) {
                Ok(b) => Some((Ok::<_, std::convert::Infallible>(b), Some((resp, guard)))),
                Err(s) => Some((Ok(stream_error_chunk(&s)), None)),
            },
            Some(Err(s)) => Some((Ok(stream_error_chunk(&s)), None)),
        }
    });
    let mut r = json_bytes(StatusCode::OK, Vec::new());
    *r.body_mut() = Body::from_stream(lines);
    r
}

/// A client-and-server stream: the body's messages go out as the request stream.
async fn bidi<Req, Resp, F, Fut>(
    caller: Caller,
    body: Body,
    limit: usize,
    keep_open: bool,
    call: F,
) -> Response<Body>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: FnOnce(tonic::Request<ReceiverStream<Req>>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Streaming<Resp>>, Status>>,
{
    let bytes = match read_body(body, limit).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    // etcd 3.4's gateway answers an undecodable client-stream body 500 with code Unknown (the
    // decoder's error is no gRPC status), unlike the 400 of unary routes.
    let msgs = match decode_all::<Req>(&bytes) {
        Ok(m) => m,
        Err(Reject::BadRequest(m)) => {
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, tonic::Code::Unknown, &m)
        }
        Err(r) => return r.into_response(),
    };
    // The request stream ends when `tx` is dropped: at once for a stream that closes with the
    // body, with the HTTP answer (which holds it) otherwise.
    let (tx, rx) = tokio::sync::mpsc::channel::<Req>(msgs.len().max(1));
    for m in msgs {
        // Cannot fail: the capacity is the number of messages and `rx` is alive.
        let _ = tx.try_send(m);
    }
    let guard = keep_open.then_some(tx);
    // A concrete (Sync) stream: tonic's client future holds a reference to it across awaits.
    let reqs = ReceiverStream::new(rx);
    let req = match grpc_request(&caller, reqs) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    match call(req).await {
        Ok(resp) => stream_response(resp.into_inner(), guard),
        Err(s) => status_response(&s),
    }
}

/// A server stream: one request message, streamed answers.
async fn server_stream<Req, Resp, F, Fut>(
    caller: Caller,
    body: Body,
    limit: usize,
    call: F,
) -> Response<Body>
where
    Req: DeserializeOwned + Default,
    Resp: Serialize + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Streaming<Resp>>, Status>>,
{
    let bytes = match read_body(body, limit).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let req = match decode::<Req>(&bytes).and_then(|m| grpc_request(&caller, m)) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    match call(req).await {
        Ok(resp) => stream_response(resp.into_inner(), ()),
        Err(s) => status_response(&s),
    }
}

pub(crate) fn routes(mut r: Router, clients: Clients, limit: usize) -> Router {
    let c = clients.watch.clone();
    r = add(
        r,
        "/watch",
        post(move |caller: Caller, body: Body| {
            let mut c = c.clone();
            async move {
                bidi::<pb::WatchRequest, _, _, _>(
                    caller,
                    body,
                    limit,
                    true,
                    move |req| -> BoxFuture<'static, _> {
                        Box::pin(async move { c.watch(req).await })
                    },
                )
                .await
            }
        }),
    );
    let c = clients.lease.clone();
    r = add(
        r,
        "/lease/keepalive",
        post(move |caller: Caller, body: Body| {
            let mut c = c.clone();
            async move {
                bidi::<pb::LeaseKeepAliveRequest, _, _, _>(
                    caller,
                    body,
                    limit,
                    false,
                    move |req| -> BoxFuture<'static, _> {
                        Box::pin(async move { c.lease_keep_alive(req).await })
                    },
                )
                .await
            }
        }),
    );
    let c = clients.election.clone();
    r = add(
        r,
        "/election/observe",
        post(move |caller: Caller, body: Body| {
            let mut c = c.clone();
            async move {
                server_stream(caller, body, limit, move |req: tonic::Request<elpb::LeaderRequest>| async move {
                    c.observe(req).await
                })
                .await
            }
        }),
    );
    let c = clients.maintenance;
    add(
        r,
        "/maintenance/snapshot",
        post(move |caller: Caller, body: Body| {
            let mut c = c.clone();
            async move {
                server_stream(caller, body, limit, move |req: tonic::Request<pb::SnapshotRequest>| async move {
                    c.snapshot(req).await
                })
                .await
            }
        }),
    )
}
