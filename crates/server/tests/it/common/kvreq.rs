//! Request builders and assertions for the raw tonic KV client (`oxcd-api`).

use oxcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::{Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp};
use tonic::transport::Channel;
use tonic::Code;

use super::{channel, TestServer};

/// Asserts that `r` failed with exactly this gRPC code and message.
pub fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, msg: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} {msg:?}, got Ok({v:?})"),
        Err(st) => {
            assert_eq!(st.code(), code, "code of {st:?}");
            assert_eq!(st.message(), msg, "message of {st:?}");
        }
    }
}

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

pub fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(put(key, value))),
    }
}

pub fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

pub fn del_op(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.into(),
            range_end: end.into(),
            ..Default::default()
        })),
    }
}

pub fn cmp_version(key: &str, v: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Version as i32,
        key: key.into(),
        target_union: Some(TargetUnion::Version(v)),
        range_end: vec![],
    }
}

pub async fn kv(s: &TestServer) -> KvClient<Channel> {
    KvClient::new(channel(s).await)
}

pub async fn current_rev(c: &mut KvClient<Channel>) -> i64 {
    c.range(RangeRequest {
        key: b"rev-probe".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}
