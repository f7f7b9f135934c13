//! The JSON gateway: etcd 3.4's grpc-gateway routes (rpc.proto's `google.api.http` options,
//! v3lock and v3election included), each a POST with the request message as its JSON body,
//! served under `/v3/` and the `/v3beta/` and `/v3alpha/` aliases of etcd 3.3/3.4 clients.
//!
//! Invariants:
//! - A route decodes its body (at most `max_request_bytes`, empty meaning the default
//!   message), forwards `Authorization` as the gRPC metadata `token` (etcd's auth reads it)
//!   and the connection's `TcpConnectInfo` as a request extension, calls the in-process gRPC client and answers the response message as JSON, or the gRPC
//!   status as grpc-gateway's error JSON.
//! - `/v3/maintenance/hash` is Hash, as in etcd 3.4 (whose HashKV shared that path and was
//!   unreachable); HashKV is `/v3/maintenance/hashkv` as in etcd 3.5.

use std::future::Future;

use axum::body::Body;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Response, StatusCode};
use axum::routing::{post, MethodRouter};
use axum::Router;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};

use oxcd_api::etcdserverpb as pb;
use oxcd_api::v3electionpb as elpb;
use oxcd_api::v3lockpb as lockpb;

use crate::clients::Clients;
use crate::error::{error_response, json_bytes, method_not_allowed, status_response, Reject};
use crate::HttpConfig;

/// Path prefixes the gateway answers under (etcd 3.5: `/v3`; 3.4 clients: `/v3beta`; 3.3:
/// `/v3alpha`).
pub(crate) const PREFIXES: [&str; 3] = ["/v3", "/v3beta", "/v3alpha"];

/// `path` (below the version prefix) under every prefix.
pub(crate) fn add(mut r: Router, path: &str, m: MethodRouter) -> Router {
    let m = m.fallback(method_not_allowed);
    for p in PREFIXES {
        r = r.route(&format!("{p}{path}"), m.clone());
    }
    r
}

/// Reads a request body of at most `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Reject> {
    // A declared Content-Length above the limit is refused before reading any of it.
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(Reject::TooLarge(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Reject::TooLarge(limit)),
        Err(e) => Err(Reject::BadRequest(format!("reading request body: {e}"))),
    }
}

/// The body as one message; an empty body is the default message (as grpc-gateway).
pub(crate) fn decode<T: DeserializeOwned + Default>(b: &[u8]) -> Result<T, Reject> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| Reject::BadRequest(e.to_string()))
}

/// The body as a sequence of messages (a client stream: grpc-gateway reads JSON values one
/// after another).
pub(crate) fn decode_all<T: DeserializeOwned>(b: &[u8]) -> Result<Vec<T>, Reject> {
    serde_json::Deserializer::from_slice(b)
        .into_iter::<T>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Reject::BadRequest(e.to_string()))
}

/// What a gateway request passes on to gRPC from its HTTP request: the `Authorization`
/// header, and the connection's address (so `Request::remote_addr` names the HTTP client).
pub(crate) struct Caller {
    authorization: Option<HeaderValue>,
    conn: Option<TcpConnectInfo>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Caller {
            authorization: parts.headers.get(http::header::AUTHORIZATION).cloned(),
            conn: parts.extensions.get::<TcpConnectInfo>().cloned(),
        })
    }
}

/// A gRPC request carrying `msg` and the caller's credentials (metadata `token`).
pub(crate) fn grpc_request<T>(caller: &Caller, msg: T) -> Result<tonic::Request<T>, Reject> {
    let mut r = tonic::Request::new(msg);
    if let Some(v) = &caller.authorization {
        let v = v
            .to_str()
            .ok()
            .and_then(|s| MetadataValue::try_from(s).ok())
            .ok_or_else(|| Reject::BadRequest("invalid Authorization header".to_string()))?;
        r.metadata_mut().insert("token", v);
    }
    if let Some(c) = &caller.conn {
        r.extensions_mut().insert(c.clone());
    }
    Ok(r)
}

pub(crate) fn json_response<T: Serialize>(msg: &T) -> Response<Body> {
    match serde_json::to_vec(msg) {
        Ok(v) => json_bytes(StatusCode::OK, v),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            &format!("encoding response: {e}"),
        ),
    }
}

/// One unary route: body → request → `call` → JSON.
async fn unary<Req, Resp, F, Fut>(
    caller: Caller,
    body: Body,
    limit: usize,
    call: F,
) -> Response<Body>
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
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
        Ok(resp) => json_response(resp.get_ref()),
        Err(s) => status_response(&s),
    }
}

/// Registers unary routes: `path => client.method(RequestType)`.
macro_rules! unary_routes {
    ($router:ident, $clients:ident, $limit:ident; $($path:literal => $client:ident . $method:ident ($req:ty)),* $(,)?) => {
        $(
            let c = $clients.$client.clone();
            $router = add($router, $path, post(move |caller: Caller, body: Body| {
                let mut c = c.clone();
                async move {
                    unary(caller, body, $limit, move |r: tonic::Request<$req>| async move {
                        c.$method(r).await
                    })
                    .await
                }
            }));
        )*
    };
}

/// Every gateway route (unary here, streams in [`crate::stream`]).
pub(crate) fn routes(clients: Clients, cfg: &HttpConfig) -> Router {
    let limit = cfg.max_request_bytes;
    let mut r = Router::new();
    unary_routes!(r, clients, limit;
        "/kv/range" => kv.range(pb::RangeRequest),
        "/kv/put" => kv.put(pb::PutRequest),
        "/kv/deleterange" => kv.delete_range(pb::DeleteRangeRequest),
        "/kv/txn" => kv.txn(pb::TxnRequest),
        "/kv/compaction" => kv.compact(pb::CompactionRequest),

        "/lease/grant" => lease.lease_grant(pb::LeaseGrantRequest),
        "/lease/revoke" => lease.lease_revoke(pb::LeaseRevokeRequest),
        "/kv/lease/revoke" => lease.lease_revoke(pb::LeaseRevokeRequest),
        "/lease/timetolive" => lease.lease_time_to_live(pb::LeaseTimeToLiveRequest),
        "/kv/lease/timetolive" => lease.lease_time_to_live(pb::LeaseTimeToLiveRequest),
        "/lease/leases" => lease.lease_leases(pb::LeaseLeasesRequest),
        "/kv/lease/leases" => lease.lease_leases(pb::LeaseLeasesRequest),

        "/cluster/member/add" => cluster.member_add(pb::MemberAddRequest),
        "/cluster/member/remove" => cluster.member_remove(pb::MemberRemoveRequest),
        "/cluster/member/update" => cluster.member_update(pb::MemberUpdateRequest),
        "/cluster/member/list" => cluster.member_list(pb::MemberListRequest),
        "/cluster/member/promote" => cluster.member_promote(pb::MemberPromoteRequest),

        "/maintenance/alarm" => maintenance.alarm(pb::AlarmRequest),
        "/maintenance/status" => maintenance.status(pb::StatusRequest),
        "/maintenance/defragment" => maintenance.defragment(pb::DefragmentRequest),
        "/maintenance/hash" => maintenance.hash(pb::HashRequest),
        "/maintenance/hashkv" => maintenance.hash_kv(pb::HashKvRequest),
        "/maintenance/transfer-leadership" => maintenance.move_leader(pb::MoveLeaderRequest),
        "/maintenance/downgrade" => maintenance.downgrade(pb::DowngradeRequest),

        "/auth/enable" => auth.auth_enable(pb::AuthEnableRequest),
        "/auth/disable" => auth.auth_disable(pb::AuthDisableRequest),
        "/auth/status" => auth.auth_status(pb::AuthStatusRequest),
        "/auth/authenticate" => auth.authenticate(pb::AuthenticateRequest),
        "/auth/user/add" => auth.user_add(pb::AuthUserAddRequest),
        "/auth/user/get" => auth.user_get(pb::AuthUserGetRequest),
        "/auth/user/list" => auth.user_list(pb::AuthUserListRequest),
        "/auth/user/delete" => auth.user_delete(pb::AuthUserDeleteRequest),
        "/auth/user/changepw" => auth.user_change_password(pb::AuthUserChangePasswordRequest),
        "/auth/user/grant" => auth.user_grant_role(pb::AuthUserGrantRoleRequest),
        "/auth/user/revoke" => auth.user_revoke_role(pb::AuthUserRevokeRoleRequest),
        "/auth/role/add" => auth.role_add(pb::AuthRoleAddRequest),
        "/auth/role/get" => auth.role_get(pb::AuthRoleGetRequest),
        "/auth/role/list" => auth.role_list(pb::AuthRoleListRequest),
        "/auth/role/delete" => auth.role_delete(pb::AuthRoleDeleteRequest),
        "/auth/role/grant" => auth.role_grant_permission(pb::AuthRoleGrantPermissionRequest),
        "/auth/role/revoke" => auth.role_revoke_permission(pb::AuthRoleRevokePermissionRequest),

        "/lock/lock" => lock.lock(lockpb::LockRequest),
        "/lock/unlock" => lock.unlock(lockpb::UnlockRequest),

        "/election/campaign" => election.campaign(elpb::CampaignRequest),
        "/election/proclaim" => election.proclaim(elpb::ProclaimRequest),
        "/election/leader" => election.leader(elpb::LeaderRequest),
        "/election/resign" => election.resign(elpb::ResignRequest),
    );
    crate::stream::routes(r, clients, limit)
}
