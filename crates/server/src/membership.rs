//! Cluster membership: member and cluster ids derived exactly as etcd derives them, and the
//! member list persisted in the backend's `members` table.
//!
//! Invariants:
//! - A member id is the first 8 bytes (big endian) of SHA-1 over the member's sorted peer
//!   URLs concatenated, then the cluster token (etcd's `computeMemberID`), so an oxcd member
//!   started with the same flags as an etcd member gets the same id.
//! - The cluster id is the first 8 bytes of SHA-1 over the sorted member ids, each as 8 bytes
//!   big endian (etcd's `RaftCluster.genID`).
//! - URLs are hashed in Go's `url.URL.String()` form (`config::format_url`).

use std::collections::BTreeMap;

use oxcd_api::etcdserverpb::Member;
use oxcd_api::oxcdpb::MemberAttributes;
use oxcd_storage::schema::{MEMBERS_TABLE, META_TABLE};
use oxcd_storage::redb::ReadableTable;
use oxcd_storage::{Backend, WriteTx};
use prost::Message;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};

/// The cluster id is fixed when the cluster is bootstrapped; membership changes keep it.
const META_CLUSTER_ID: &str = "cluster_id";

/// etcd's member id for a member with `peer_urls` in the cluster named `token`.
pub fn compute_member_id(peer_urls: &[String], token: &str, now_secs: Option<u64>) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    // Members added later also hash the time, so a re-added URL gets a new id.
    if let Some(t) = now_secs {
        h.update(t.to_string().as_bytes());
    }
    first_u64(&h.finalize())
}

/// etcd's cluster id for a cluster of `member_ids`.
pub fn compute_cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// The members of the cluster and its id.
#[derive(Debug, Clone, Default)]
pub struct RaftCluster {
    pub cluster_id: u64,
    pub members: BTreeMap<u64, MemberAttributes>,
}

impl RaftCluster {
    /// The cluster described by `--initial-cluster` (name -> peer URLs) and the token.
    pub fn from_initial(members: &[(String, Vec<String>)], token: &str) -> RaftCluster {
        let members: BTreeMap<u64, MemberAttributes> = members
            .iter()
            .map(|(name, urls)| {
                let id = compute_member_id(urls, token, None);
                let attrs = MemberAttributes {
                    id,
                    name: name.clone(),
                    peer_urls: urls.clone(),
                    client_urls: vec![],
                    is_learner: false,
                };
                (id, attrs)
            })
            .collect();
        let ids: Vec<u64> = members.keys().copied().collect();
        RaftCluster {
            cluster_id: compute_cluster_id(&ids),
            members,
        }
    }

    /// Loads the members saved in the backend (empty for a new data dir).
    pub fn load(backend: &Backend) -> Result<RaftCluster> {
        let rtx = backend.read_tx()?;
        let table = rtx
            .open_table(MEMBERS_TABLE)
            .map_err(oxcd_storage::Error::from)?;
        let mut members = BTreeMap::new();
        for row in table.iter().map_err(oxcd_storage::Error::from)? {
            let (_, v) = row.map_err(oxcd_storage::Error::from)?;
            let m = MemberAttributes::decode(v.value())
                .map_err(|e| Error::Corrupt(format!("member record: {e}")))?;
            members.insert(m.id, m);
        }
        let meta = rtx
            .open_table(META_TABLE)
            .map_err(oxcd_storage::Error::from)?;
        let cluster_id = meta
            .get(META_CLUSTER_ID)
            .map_err(oxcd_storage::Error::from)?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Ok(RaftCluster {
            cluster_id,
            members,
        })
    }

    /// Deletes member `id` from the backend's member table.
    pub fn delete(tx: &mut WriteTx, id: u64) -> Result<()> {
        let mut table = tx
            .tx
            .open_table(MEMBERS_TABLE)
            .map_err(oxcd_storage::Error::from)?;
        table
            .remove(id.to_be_bytes().as_slice())
            .map_err(oxcd_storage::Error::from)?;
        Ok(())
    }

    /// Writes the cluster id and every member into `tx`.
    pub fn save(&self, tx: &mut WriteTx) -> Result<()> {
        tx.tx
            .open_table(META_TABLE)
            .map_err(oxcd_storage::Error::from)?
            .insert(META_CLUSTER_ID, self.cluster_id.to_be_bytes().as_slice())
            .map_err(oxcd_storage::Error::from)?;
        let mut table = tx
            .tx
            .open_table(MEMBERS_TABLE)
            .map_err(oxcd_storage::Error::from)?;
        for (id, m) in &self.members {
            table
                .insert(id.to_be_bytes().as_slice(), m.encode_to_vec().as_slice())
                .map_err(oxcd_storage::Error::from)?;
        }
        Ok(())
    }

    /// Members as the Cluster API returns them; `local` (id, client URLs) fills in this
    /// member's current client URLs.
    pub fn member_list(&self, local: (u64, &[String])) -> Vec<Member> {
        self.members
            .values()
            .map(|m| Member {
                id: m.id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: if m.id == local.0 {
                    local.1.to_vec()
                } else {
                    m.client_urls.clone()
                },
                is_learner: m.is_learner,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_for_the_default_member() {
        // `etcd` with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let id = compute_member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(
            format!("{:x}", compute_cluster_id(&[id])),
            "cdf818194e3a8c32"
        );
    }
}
