//! KV semantics through the `etcd-client` crate and raw tonic: round trips with range
//! options (count_only, keys_only, sort, revision filters), txn inner headers, nested txns.
//! Runs against oxcd (default) or etcd (`OXCD_TEST_SERVER=etcd`).

use crate::common::kvreq::*;
use crate::common::{etcd_client, TestServer};
use oxcd_api::etcdserverpb::request_op::Request;
use oxcd_api::etcdserverpb::response_op::Response;
use oxcd_api::etcdserverpb::{RangeRequest, RequestOp, TxnRequest};
use tonic::Code;

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";

#[tokio::test]
async fn etcd_client_round_trips() {
    use etcd_client::{
        Compare as C, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn,
        TxnOp, TxnOpResponse,
    };
    let s = TestServer::start();
    let mut c = etcd_client(&s).await;
    let r = c.put("a", "1", None).await.unwrap(); // 2
    assert_eq!(r.header().unwrap().revision(), 2);
    c.put("b", "2", None).await.unwrap(); // 3
    c.put("c", "3", None).await.unwrap(); // 4
    let r = c
        .put("a", "10", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap(); // 5
    assert_eq!(r.prev_key().unwrap().value(), b"1");

    let r = c.get("a", None).await.unwrap();
    let kv = &r.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version()
        ),
        (&b"10"[..], 2, 5, 2)
    );
    // count_only (not available in etcdctl 3.4).
    let r = c
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 3);
    assert!(r.kvs().is_empty());
    // keys_only + limit + sort.
    let r = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_keys_only()
                    .with_limit(2)
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = r.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"a"[..], b"c"]);
    assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));
    assert!(r.more());
    assert_eq!(r.count(), 3);
    // mod/create revision filters.
    let r = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_min_mod_revision(3)
                    .with_max_mod_revision(4),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = r.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"b"[..], b"c"]);
    let r = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_min_create_revision(3),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = r.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [&b"b"[..], b"c"]);

    // txn with compare on value, both branches.
    let txn = Txn::new()
        .when([C::value("a", CompareOp::Equal, "10")])
        .and_then([TxnOp::put("t", "yes", None), TxnOp::get("b", None)])
        .or_else([TxnOp::put("t", "no", None)]);
    let r = c.txn(txn).await.unwrap(); // 6
    assert!(r.succeeded());
    match &r.op_responses()[1] {
        TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].value(), b"2"),
        other => panic!("unexpected {other:?}"),
    }
    let txn = Txn::new()
        .when([
            C::mod_revision("a", CompareOp::Less, 5),
            C::create_revision("b", CompareOp::Equal, 3),
        ])
        .and_then([TxnOp::put("t", "yes2", None)])
        .or_else([TxnOp::put("t", "no", None), TxnOp::delete("c", None)]);
    let r = c.txn(txn).await.unwrap(); // 7
    assert!(!r.succeeded());
    assert_eq!(r.header().unwrap().revision(), 7);
    let r = c.get("t", None).await.unwrap();
    assert_eq!(r.kvs()[0].value(), b"no");
    assert_eq!(r.kvs()[0].version(), 2);
    assert!(c.get("c", None).await.unwrap().kvs().is_empty());

    // delete with prefix + prev kvs.
    c.put("p/1", "x", None).await.unwrap(); // 8
    c.put("p/2", "y", None).await.unwrap(); // 9
    let r = c
        .delete(
            "p/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap(); // 10
    assert_eq!(r.deleted(), 2);
    assert_eq!(r.prev_kvs().len(), 2);
    assert_eq!(r.header().unwrap().revision(), 10);

    // compact + read at a compacted revision through the crate.
    c.compact(9, None).await.unwrap();
    let err = c
        .get("a", Some(GetOptions::new().with_revision(8)))
        .await
        .expect_err("compacted");
    match err {
        etcd_client::Error::GRpcStatus(st) => {
            assert_eq!(st.code(), Code::OutOfRange);
            assert_eq!(st.message(), COMPACTED);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let r = c
        .get("p/", Some(GetOptions::new().with_prefix().with_revision(9)))
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 2);

    // Status through the crate.
    let st = c.status().await.unwrap();
    assert!(
        st.version().starts_with("3.4.") || st.version().starts_with("3.5."),
        "{}",
        st.version()
    );
    assert!(st.db_size() > 0);
    assert_eq!(st.leader(), st.header().unwrap().member_id());
    assert!(st.raft_index() > 0);
    assert!(st.raft_term() >= 1);
    let m = c.member_list().await.unwrap();
    assert_eq!(m.members().len(), 1);
    assert_eq!(m.members()[0].name(), "n1");
    assert_eq!(m.members()[0].id(), st.leader());
    assert_eq!(m.members()[0].client_urls(), [s.client_url()]);
    assert_eq!(m.members()[0].peer_urls(), [s.peer_url()]);
}

#[tokio::test]
async fn txn_inner_headers_nested_txn_and_noop_writes() {
    let s = TestServer::start();
    let mut c = kv(&s).await;
    c.put(put("a", "1")).await.unwrap(); // 2
                                         // Inner responses carry a header with only the revision set.
    let r = c
        .txn(TxnRequest {
            success: vec![put_op("b", "1"), get_op("a"), del_op("zzz", "")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner(); // 3
    let outer = r.header.unwrap();
    assert_eq!(outer.revision, 3);
    assert_ne!(outer.member_id, 0);
    assert_ne!(outer.cluster_id, 0);
    assert_ne!(outer.raft_term, 0);
    for op in &r.responses {
        let h = match &op.response {
            Some(Response::ResponsePut(p)) => p.header,
            Some(Response::ResponseRange(p)) => p.header,
            Some(Response::ResponseDeleteRange(p)) => p.header,
            other => panic!("unexpected {other:?}"),
        }
        .expect("inner header present");
        assert_eq!(
            (h.revision, h.cluster_id, h.member_id, h.raft_term),
            (3, 0, 0, 0),
            "inner header of {op:?}"
        );
    }
    // A txn whose only write deletes nothing, or that only reads, does not bump the revision.
    for ops in [vec![del_op("nothing", "")], vec![get_op("a"), get_op("b")]] {
        let r = c
            .txn(TxnRequest {
                success: ops,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.header.unwrap().revision, 3);
    }
    // Nested txn. etcd evaluates every compare (nested ones too) against the state before
    // the outer txn runs, so the inner compare does not see the outer put of "n".
    let inner = TxnRequest {
        compare: vec![cmp_version("n", 1)],
        success: vec![put_op("inner", "yes")],
        failure: vec![put_op("inner", "no"), get_op("a")],
    };
    let r = c
        .txn(TxnRequest {
            success: vec![
                put_op("n", "1"),
                RequestOp {
                    request: Some(Request::RequestTxn(inner)),
                },
            ],
            ..Default::default()
        })
        .await
        .expect("nested txn")
        .into_inner(); // 4
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 4);
    match &r.responses[1].response {
        Some(Response::ResponseTxn(t)) => {
            assert!(
                !t.succeeded,
                "inner compare is evaluated before the outer put: {t:?}"
            );
            // etcd 3.4: the nested TxnResponse header is all zeros (even the revision).
            let h = t.header.expect("nested header present");
            assert_eq!(
                (h.revision, h.cluster_id, h.member_id, h.raft_term),
                (0, 0, 0, 0)
            );
            assert_eq!(t.responses.len(), 2);
            match &t.responses[0].response {
                Some(Response::ResponsePut(p)) => {
                    assert_eq!(p.header.as_ref().unwrap().revision, 4)
                }
                other => panic!("unexpected {other:?}"),
            }
            match &t.responses[1].response {
                Some(Response::ResponseRange(g)) => assert_eq!(g.kvs[0].value, b"1"),
                other => panic!("unexpected {other:?}"),
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    let g = c
        .range(RangeRequest {
            key: b"inner".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.kvs[0].value, b"no");
    assert_eq!(
        g.kvs[0].mod_revision, 4,
        "nested writes share the txn revision"
    );
    // The same key written in the outer txn and a nested txn is a duplicate.
    let inner = TxnRequest {
        success: vec![put_op("d", "2")],
        ..Default::default()
    };
    assert_status(
        c.txn(TxnRequest {
            success: vec![
                put_op("d", "1"),
                RequestOp {
                    request: Some(Request::RequestTxn(inner)),
                },
            ],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
}
