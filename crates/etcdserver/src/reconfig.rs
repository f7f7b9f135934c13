//! `--strict-reconfig-check`: etcd's guards that refuse a membership change which would
//! leave the cluster without a working quorum (etcd's `mayAddMember`, `mayRemoveMember`,
//! `IsReadyTo*`).
//!
//! Invariants: a member counts as *started* once it has published its name; it counts as
//! *connected* when our stream to it has been up for at least [`HEALTH_INTERVAL`] (this
//! member always counts as connected to itself). Learners never affect quorum.

use std::time::{Duration, Instant};

use oxcd_api::EtcdError;

use crate::server::EtcdServer;

/// How long a peer must have been connected to count (etcd's HealthInterval).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

struct Voters {
    /// (id, started)
    members: Vec<(u64, bool)>,
}

fn voters(s: &EtcdServer) -> Voters {
    Voters {
        members: s
            .cluster
            .read()
            .members
            .values()
            .filter(|m| !m.is_learner)
            .map(|m| (m.id, !m.name.is_empty()))
            .collect(),
    }
}

fn connected_since(s: &EtcdServer, id: u64, since: Instant) -> bool {
    id == s.member_id || s.transport.active_since(id).is_some_and(|t| t <= since)
}

fn num_connected(s: &EtcdServer, v: &Voters) -> usize {
    let since = Instant::now()
        .checked_sub(HEALTH_INTERVAL)
        .unwrap_or_else(Instant::now);
    v.members
        .iter()
        .filter(|(id, _)| connected_since(s, *id, since))
        .count()
}

/// May a member (learner or voter) be added now?
pub fn may_add_member(s: &EtcdServer, is_learner: bool) -> Result<(), EtcdError> {
    if !s.settings.strict_reconfig_check {
        return Ok(());
    }
    let v = voters(s);
    if !is_learner {
        let nmembers = v.members.len() + 1;
        let nstarted = v.members.iter().filter(|(_, st)| *st).count();
        let single_plus_one = nstarted == 1 && nmembers == 2;
        if !single_plus_one && nstarted < nmembers / 2 + 1 {
            tracing::warn!(
                nstarted,
                nmembers,
                "rejecting member add: started members would be less than quorum"
            );
            return Err(EtcdError::MemberNotEnoughStarted);
        }
    }
    if num_connected(s, &v) != v.members.len() {
        tracing::warn!("rejecting member add: not every voting member is connected");
        return Err(EtcdError::Unhealthy);
    }
    Ok(())
}

/// May member `id` be removed now?
pub fn may_remove_member(s: &EtcdServer, id: u64) -> Result<(), EtcdError> {
    if !s.settings.strict_reconfig_check {
        return Ok(());
    }
    let v = voters(s);
    if !v.members.iter().any(|(m, _)| *m == id) {
        return Ok(()); // a learner
    }
    let nmembers = v.members.len() - 1;
    let nstarted = v.members.iter().filter(|(m, st)| *m != id && *st).count();
    if nstarted < nmembers / 2 + 1 {
        return Err(EtcdError::MemberNotEnoughStarted);
    }
    // A member that is down is not part of the active quorum: safe to remove.
    if id != s.member_id && s.transport.active_since(id).is_none() {
        return Ok(());
    }
    let active = num_connected(s, &v);
    if active.saturating_sub(1) < 1 + (v.members.len() - 1) / 2 {
        tracing::warn!(
            active,
            voters = v.members.len(),
            "rejecting member remove: quorum would be lost"
        );
        return Err(EtcdError::Unhealthy);
    }
    Ok(())
}

/// May learner `id` be promoted now (counting it as started)?
pub fn may_promote_member(s: &EtcdServer) -> Result<(), EtcdError> {
    if !s.settings.strict_reconfig_check {
        return Ok(());
    }
    let v = voters(s);
    let nmembers = v.members.len() + 1;
    let nstarted = 1 + v.members.iter().filter(|(_, st)| *st).count();
    if nstarted < nmembers / 2 + 1 {
        return Err(EtcdError::MemberNotEnoughStarted);
    }
    Ok(())
}
