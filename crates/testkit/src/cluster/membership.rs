//! Membership faults: removing a member and adding it back with a wiped data dir.
//!
//! Invariants: the change goes through a running, unpaused other member and is bounded
//! (20 s); the re-added member keeps its name and URLs, gets a new data generation and
//! starts with `--initial-cluster-state existing` and the cluster's current membership.

use std::time::Duration;

use oxcd_api::etcdserverpb::{
    cluster_client::ClusterClient, MemberAddRequest, MemberListRequest, MemberRemoveRequest,
};

use super::Cluster;
use crate::status::lazy_channel;

impl Cluster {
    /// Removes member `i` from the cluster (via a running member), kills it, wipes its
    /// data, adds it back as a new member with the same name and URLs and starts it with
    /// `--initial-cluster-state existing`. Bumps its data generation.
    pub fn remove_and_readd(&mut self, i: usize) -> Result<(), String> {
        let via = (0..self.members.len())
            .find(|&j| j != i && self.members[j].is_running() && !self.members[j].is_paused())
            .ok_or("no other running member")?;
        let id = match self.status(i) {
            Ok(s) => s.member_id,
            Err(_) if self.members[i].id != 0 => self.members[i].id,
            Err(e) => return Err(format!("unknown id of {}: {e}", self.members[i].name)),
        };
        let url = self.members[via].client_url();
        let peer = self.members[i].adv_peer_url();
        let members = self.rt.block_on(async move {
            let fut = async {
                let mut cc = ClusterClient::new(lazy_channel(&url)?);
                cc.member_remove(MemberRemoveRequest { id })
                    .await
                    .map_err(|e| format!("member remove: {}", e.message()))?;
                // Adding right after removing can fail while the removal is applied.
                let mut last = String::new();
                for _ in 0..40 {
                    match cc
                        .member_add(MemberAddRequest {
                            peer_ur_ls: vec![peer.clone()],
                            is_learner: false,
                        })
                        .await
                    {
                        Ok(_) => {
                            let l = cc
                                .member_list(MemberListRequest { linearizable: true })
                                .await
                                .map_err(|e| format!("member list: {}", e.message()))?;
                            return Ok(l.into_inner().members);
                        }
                        Err(e) => last = e.message().to_string(),
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(format!("member add: {last}"))
            };
            tokio::time::timeout(Duration::from_secs(20), fut)
                .await
                .map_err(|_| "remove/re-add timed out".to_string())?
        });
        self.kill9(i);
        let members = members?;
        let m = &mut self.members[i];
        m.data_gen += 1;
        m.data_dir = m.dir_path.join(format!("data.{}", m.data_gen));
        m.state_existing = true;
        m.id = 0;
        let peer = m.adv_peer_url();
        m.initial_cluster = members
            .iter()
            .map(|x| {
                let name = if x.peer_ur_ls.contains(&peer) {
                    m.name.clone()
                } else {
                    x.name.clone()
                };
                format!(
                    "{}={}",
                    name,
                    x.peer_ur_ls.first().cloned().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        self.try_spawn(i)
    }
}
