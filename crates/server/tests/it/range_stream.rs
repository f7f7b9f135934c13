//! `KV.RangeStream` (etcd 3.7) through a client generated from our rpc.proto: chunk sizes
//! (10 first, doubling under half of `--max-request-bytes`), only the last chunk carrying
//! header/more/count, the merge equal to the unary Range at the pinned revision (writes
//! during the stream are not seen), limit / count_only / keys_only, `Unimplemented` for
//! sorts and revision filters, and `Compacted` when a compaction overtakes the stream.
//! oxcd only: etcd 3.4 has no RangeStream.

use oxcd_api::etcdserverpb::kv_client::KvClient;
use oxcd_api::etcdserverpb::range_request::SortOrder;
use oxcd_api::etcdserverpb::{
    request_op, CompactionRequest, PutRequest, RangeRequest, RangeResponse, RangeStreamResponse,
    RequestOp, TxnRequest,
};
use tonic::transport::Channel;
use tonic::Code;

use crate::common::{channel, kvreq, oxcd_only, TestServer};

const MAX_REQUEST_BYTES: usize = 100_000;

fn prefix_req(p: &str) -> RangeRequest {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    RangeRequest {
        key: p.as_bytes().to_vec(),
        range_end: end,
        ..Default::default()
    }
}

/// `n` keys `{p}00000`.. in txns of 50 puts (under the small `--max-request-bytes`).
async fn fill(kv: &mut KvClient<Channel>, p: &str, n: usize, value_len: usize) {
    for batch in (0..n).collect::<Vec<_>>().chunks(50) {
        let success = batch
            .iter()
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: format!("{p}{i:05}").into_bytes(),
                    value: vec![b'v'; value_len],
                    ..Default::default()
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            success,
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

/// oxcd with a small `--max-request-bytes` (so chunk sizing shows within a few hundred
/// keys), a channel to it and a KV client.
async fn start() -> (TestServer, Channel, KvClient<Channel>) {
    let s = tokio::task::block_in_place(|| {
        TestServer::start_with(&["--max-request-bytes", &MAX_REQUEST_BYTES.to_string()])
    });
    let ch = channel(&s).await;
    let kv = KvClient::new(ch.clone());
    (s, ch, kv)
}

/// Opens a stream over prefix `p` and reads its first chunk, which must hold 10 keys.
async fn first_chunk(
    kv: &mut KvClient<Channel>,
    p: &str,
) -> (tonic::Streaming<RangeStreamResponse>, RangeResponse) {
    let mut stream = kv.range_stream(prefix_req(p)).await.unwrap().into_inner();
    let first = stream
        .message()
        .await
        .unwrap()
        .unwrap()
        .range_response
        .unwrap();
    assert_eq!(first.kvs.len(), 10);
    (stream, first)
}

async fn collect(
    kv: &mut KvClient<Channel>,
    req: RangeRequest,
) -> Result<Vec<RangeResponse>, tonic::Status> {
    let mut s = kv.range_stream(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        let RangeStreamResponse { range_response } = m;
        out.push(range_response.expect("range_response"));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_merge_to_the_unary_range_at_the_pinned_revision() {
    oxcd_only("range_stream::chunks_merge_to_the_unary_range_at_the_pinned_revision");
    let (_s, ch, mut kv) = start().await;
    fill(&mut kv, "rs/", 300, 1000).await;

    // Chunk sizes and where header/more/count go.
    let chunks = collect(&mut kv, prefix_req("rs/")).await.unwrap();
    let sizes: Vec<usize> = chunks.iter().map(|c| c.kvs.len()).collect();
    assert_eq!(&sizes[..4], &[10, 20, 40, 80], "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 300, "{sizes:?}");
    assert!(sizes[4..].iter().all(|n| *n <= 80), "{sizes:?}");
    let (last, rest) = chunks.split_last().unwrap();
    for c in rest {
        assert!(
            c.header.is_none() && !c.more && c.count == 0,
            "{:?}",
            (c.header, c.more, c.count)
        );
    }
    let header = last.header.expect("the last chunk has the header");
    assert_eq!((last.count, last.more), (300, false));
    assert!(header.cluster_id != 0 && header.member_id != 0);
    let unary = kv
        .range(RangeRequest {
            revision: header.revision,
            ..prefix_req("rs/")
        })
        .await
        .unwrap()
        .into_inner();
    let merged: Vec<_> = chunks.iter().flat_map(|c| c.kvs.clone()).collect();
    assert_eq!(
        merged, unary.kvs,
        "merged chunks differ from the unary Range"
    );

    // Pinned: keys written after the first chunk are not in the stream.
    let (mut stream, first) = first_chunk(&mut kv, "rs/").await;
    let mut writer = KvClient::new(ch.clone());
    for k in ["rs/zz-late", "rs/00000-late"] {
        writer.put(kvreq::put(k, "late")).await.unwrap();
    }
    let mut all = first.kvs;
    let mut last = None;
    while let Some(m) = stream.message().await.unwrap() {
        let c = m.range_response.unwrap();
        all.extend(c.kvs.clone());
        last = Some(c);
    }
    let last = last.unwrap();
    assert_eq!(
        all.len(),
        300,
        "a key written during the stream was streamed"
    );
    assert!(all.iter().all(|kv| kv.value != b"late"));
    assert_eq!(last.count, 300);
    assert_eq!(
        last.header.unwrap().revision,
        header.revision,
        "not pinned at the first chunk"
    );

    // limit, count_only, keys_only.
    let limited = collect(
        &mut kv,
        RangeRequest {
            limit: 25,
            ..prefix_req("rs/")
        },
    )
    .await
    .unwrap();
    let l = limited.last().unwrap();
    assert_eq!(limited.iter().map(|c| c.kvs.len()).sum::<usize>(), 25);
    assert_eq!((l.count, l.more), (302, true));
    let counted = collect(
        &mut kv,
        RangeRequest {
            count_only: true,
            ..prefix_req("rs/")
        },
    )
    .await
    .unwrap();
    assert_eq!(counted.len(), 1);
    assert!(counted[0].kvs.is_empty() && counted[0].count == 302);
    let keys = collect(
        &mut kv,
        RangeRequest {
            keys_only: true,
            ..prefix_req("rs/")
        },
    )
    .await
    .unwrap();
    let keys: Vec<_> = keys.iter().flat_map(|c| c.kvs.clone()).collect();
    assert_eq!(keys.len(), 302);
    assert!(keys.iter().all(|kv| kv.value.is_empty()));

    // A single key and an empty range are one chunk each.
    let one = collect(
        &mut kv,
        RangeRequest {
            key: b"rs/00007".to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((one.len(), one[0].kvs.len(), one[0].count), (1, 1, 1));
    let none = collect(&mut kv, prefix_req("nothing/")).await.unwrap();
    assert_eq!((none.len(), none[0].count), (1, 0));
    assert!(none[0].header.is_some());

    // What RangeStream does not do.
    for req in [
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            ..prefix_req("rs/")
        },
        RangeRequest {
            min_mod_revision: 2,
            ..prefix_req("rs/")
        },
    ] {
        let st = collect(&mut kv, req).await.unwrap_err();
        assert_eq!(st.code(), Code::Unimplemented, "{st:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_overtaking_the_stream_ends_it_with_compacted() {
    oxcd_only("range_stream::a_compaction_overtaking_the_stream_ends_it_with_compacted");
    let (_s, ch, mut kv) = start().await;
    fill(&mut kv, "c/", 2000, 1000).await;
    let (mut stream, first) = first_chunk(&mut kv, "c/").await;
    let mut w = KvClient::new(ch.clone());
    w.put(kvreq::put("other", "x")).await.unwrap();
    let rev = kvreq::current_rev(&mut w).await;
    w.compact(CompactionRequest {
        revision: rev,
        physical: true,
    })
    .await
    .unwrap();
    let mut streamed = first.kvs.len();
    let err = loop {
        match stream.message().await {
            Ok(Some(m)) => streamed += m.range_response.unwrap().kvs.len(),
            Ok(None) => panic!("the stream ended normally after {streamed} keys"),
            Err(st) => break st,
        }
    };
    assert!(streamed < 2000, "every key streamed despite the compaction");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}
