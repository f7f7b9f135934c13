//! Status queries and "eventually" waits on a cluster: an agreed leader, converged members.
//!
//! Invariants: every Status call is bounded by `opts.status_timeout`; every wait is bounded
//! in time and iterations; a successful Status records the member's id. A leader counts as
//! agreed only when every queried member answers, names the same non-zero leader, and that
//! leader is one of the queried members.

use std::time::{Duration, Instant};

use super::Cluster;
use crate::status::{status_of, MemberStatus};

impl Cluster {
    /// One Status call on member `i`; records the member id.
    pub fn status(&mut self, i: usize) -> Result<MemberStatus, String> {
        self.statuses(&[i]).pop().expect("one status")
    }

    /// Statuses of several members, queried concurrently.
    pub fn statuses(&mut self, idx: &[usize]) -> Vec<Result<MemberStatus, String>> {
        let urls: Vec<String> = idx.iter().map(|&i| self.members[i].client_url()).collect();
        let t = self.opts.status_timeout;
        let rs = self.rt.block_on(async move {
            let hs: Vec<_> = urls
                .into_iter()
                .map(|u| tokio::spawn(status_of(u, t)))
                .collect();
            let mut out = Vec::new();
            for h in hs {
                out.push(h.await.unwrap_or_else(|e| Err(e.to_string())));
            }
            out
        });
        for (k, r) in rs.iter().enumerate() {
            if let Ok(s) = r {
                self.members[idx[k]].id = s.member_id;
            }
        }
        rs
    }

    /// Indexes of the members that are running and not paused.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].is_running() && !self.members[i].is_paused())
            .collect()
    }

    /// Waits (up to `timeout`) until every member in `idx` agrees on a leader among them.
    /// Returns the leader's index. Panics with the last statuses on timeout.
    pub fn wait_leader(&mut self, idx: &[usize], timeout: Duration) -> usize {
        self.try_wait_leader(idx, timeout, 0).unwrap_or_else(|e| {
            panic!(
                "no agreed leader among {:?} within {timeout:?}: {e}",
                self.names(idx)
            )
        })
    }

    /// Like [`Cluster::wait_leader`] but the leader must not have id `not`; returns Err on
    /// timeout.
    pub fn try_wait_leader(
        &mut self,
        idx: &[usize],
        timeout: Duration,
        not: u64,
    ) -> Result<usize, String> {
        let idx = idx.to_vec();
        self.wait_leader_where(|_| idx.clone(), timeout, not, Duration::from_millis(50))
    }

    /// Waits until the running, unpaused members (re-evaluated on every poll) agree on a
    /// leader among them.
    pub fn wait_live_leader(&mut self, timeout: Duration) -> Result<usize, String> {
        self.wait_leader_where(Cluster::live, timeout, 0, Duration::from_millis(100))
            .map_err(|e| format!("no agreed leader within {timeout:?}: {e}"))
    }

    fn wait_leader_where(
        &mut self,
        idx: impl Fn(&Cluster) -> Vec<usize>,
        timeout: Duration,
        not: u64,
        interval: Duration,
    ) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        for _ in 0..10_000 {
            let idx = idx(self);
            let sts = self.statuses(&idx);
            match self.agreed_leader(&idx, &sts, not) {
                Ok(l) => return Ok(l),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(interval);
        }
        Err(last)
    }

    fn agreed_leader(
        &self,
        idx: &[usize],
        sts: &[Result<MemberStatus, String>],
        not: u64,
    ) -> Result<usize, String> {
        let mut leader = None;
        for (k, s) in sts.iter().enumerate() {
            let name = &self.members[idx[k]].name;
            let s = s.as_ref().map_err(|e| format!("{name}: {e}"))?;
            if s.leader == 0 {
                return Err(format!("{name}: no leader ({s:?})"));
            }
            if s.leader == not {
                return Err(format!("{name}: still follows old leader {not:x} ({s:?})"));
            }
            match leader {
                None => leader = Some(s.leader),
                Some(l) if l != s.leader => {
                    return Err(format!("disagreement: {:?}", self.describe(idx, sts)))
                }
                _ => {}
            }
        }
        let l = leader.ok_or("no members")?;
        idx.iter()
            .copied()
            .find(|&i| self.members[i].id == l)
            .ok_or_else(|| format!("leader {l:x} is not among {:?}", self.names(idx)))
    }

    /// Index of the current leader as seen by any running, unpaused member, if known.
    pub fn leader(&mut self) -> Option<usize> {
        for i in self.live() {
            if let Ok(s) = self.status(i) {
                if let Some(li) = self.index_of(s.leader) {
                    return Some(li);
                }
            }
        }
        None
    }

    pub fn describe(&self, idx: &[usize], sts: &[Result<MemberStatus, String>]) -> String {
        idx.iter()
            .zip(sts)
            .map(|(&i, s)| match s {
                Ok(s) => format!(
                    "{}(id {:x}): leader {:x} term {} index {} applied {} rev {}{}",
                    self.members[i].name,
                    s.member_id,
                    s.leader,
                    s.term,
                    s.raft_index,
                    s.applied,
                    s.revision,
                    if s.is_learner { " learner" } else { "" }
                ),
                Err(e) => format!("{}: {e}", self.members[i].name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Waits until every member in `idx` reports the same revision and applied index, stable
    /// over two polls (writes must have stopped). Returns the common revision; panics on
    /// timeout.
    pub fn wait_converged(&mut self, idx: &[usize], timeout: Duration) -> i64 {
        let fixed = idx.to_vec();
        self.converged_where(|_| fixed.clone(), timeout, Duration::from_millis(200))
            .unwrap_or_else(|last| {
                panic!(
                    "members {:?} did not converge within {timeout:?}: {last}",
                    self.names(idx)
                )
            })
    }

    /// Like [`Cluster::wait_converged`] over the running members (re-evaluated on every
    /// poll), returning Err on timeout.
    pub fn wait_running_converged(&mut self, timeout: Duration) -> Result<i64, String> {
        let running = |c: &Cluster| {
            (0..c.members.len())
                .filter(|&i| c.members[i].is_running())
                .collect()
        };
        self.converged_where(running, timeout, Duration::from_millis(300))
            .map_err(|last| format!("members did not converge within {timeout:?}: {last}"))
    }

    fn converged_where(
        &mut self,
        idx: impl Fn(&Cluster) -> Vec<usize>,
        timeout: Duration,
        interval: Duration,
    ) -> Result<i64, String> {
        let deadline = Instant::now() + timeout;
        let mut prev: Option<(i64, u64)> = None;
        let mut last = String::new();
        for _ in 0..10_000 {
            let idx = idx(self);
            let sts = self.statuses(&idx);
            last = self.describe(&idx, &sts);
            let ok: Vec<&MemberStatus> = sts.iter().filter_map(|s| s.as_ref().ok()).collect();
            let same = match ok.first() {
                Some(f) if ok.len() == idx.len() => ok
                    .iter()
                    .all(|s| (s.revision, s.applied) == (f.revision, f.applied))
                    .then_some((f.revision, f.applied)),
                _ => None,
            };
            if let Some(cur) = same {
                if prev == Some(cur) {
                    return Ok(cur.0);
                }
            }
            prev = same;
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(interval);
        }
        Err(last)
    }
}
