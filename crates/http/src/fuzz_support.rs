//! Body of the `gateway_json` fuzz target (`fuzz/fuzz_targets/gateway_json.rs`), shared
//! with the corpus-replay test so `cargo test` runs the committed corpus.
//!
//! Invariants:
//! - Input: one byte choosing the route's request type, then the HTTP body. The body is
//!   decoded as the gateway does ([`crate::gateway::decode`] for unary and server-stream
//!   routes, [`crate::gateway::decode_all`] for client streams); a decoded message is
//!   encoded back to JSON as responses are (pbjson's serde both ways).
//! - Errors are fine; a panic is the finding.

use oxcd_api::etcdserverpb as pb;
use oxcd_api::v3electionpb as elpb;
use oxcd_api::v3lockpb as lockpb;

use crate::error::Reject;
use crate::gateway::{decode, decode_all};

fn one<T>(b: &[u8]) -> Result<(), Reject>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Default,
{
    let m: T = decode(b)?;
    serde_json::to_vec(&m).map_err(|e| Reject::BadRequest(e.to_string()))?;
    Ok(())
}

fn all<T>(b: &[u8]) -> Result<(), Reject>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    for m in decode_all::<T>(b)? {
        serde_json::to_vec(&m).map_err(|e| Reject::BadRequest(e.to_string()))?;
    }
    Ok(())
}

/// Runs one input (see the module doc); `Ok(true)` if the body decoded.
pub fn gateway_json(data: &[u8]) -> Result<bool, String> {
    let Some((&kind, body)) = data.split_first() else {
        return Ok(false);
    };
    let r = match kind % 16 {
        0 => one::<pb::RangeRequest>(body),
        1 => one::<pb::PutRequest>(body),
        2 => one::<pb::DeleteRangeRequest>(body),
        3 => one::<pb::TxnRequest>(body),
        4 => one::<pb::CompactionRequest>(body),
        5 => one::<pb::LeaseGrantRequest>(body),
        6 => all::<pb::LeaseKeepAliveRequest>(body),
        7 => all::<pb::WatchRequest>(body),
        8 => one::<pb::AuthUserAddRequest>(body),
        9 => one::<pb::AuthRoleGrantPermissionRequest>(body),
        10 => one::<pb::AuthenticateRequest>(body),
        11 => one::<pb::MemberAddRequest>(body),
        12 => one::<pb::AlarmRequest>(body),
        13 => one::<lockpb::LockRequest>(body),
        14 => one::<elpb::CampaignRequest>(body),
        _ => one::<elpb::ProclaimRequest>(body),
    };
    match r {
        Ok(()) => Ok(true),
        Err(Reject::BadRequest(_)) => Ok(false),
        Err(Reject::TooLarge(n)) => Err(format!("body above {n} bytes")),
    }
}

/// Every file of the committed corpus of `target` (`fuzz/corpus/<target>/`).
#[cfg(test)]
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "corpus {} is empty", dir.display());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_json_corpus_replays_without_panic() {
        let mut decoded = 0;
        for (name, data) in corpus("gateway_json") {
            let r = gateway_json(&data);
            decoded += usize::from(matches!(r, Ok(true)));
            eprintln!("{name}: {r:?}");
        }
        assert!(decoded > 0, "nothing in the corpus decodes");
    }
}
