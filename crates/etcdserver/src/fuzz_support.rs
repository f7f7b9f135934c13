//! Body of the `raft_message` fuzz target (`fuzz/fuzz_targets/raft_message.rs`), shared with
//! the corpus-replay test so `cargo test` runs the committed corpus.
//!
//! Invariants:
//! - Input: one byte of setup (odd: member 1 campaigns first, so candidate and leader
//!   paths are reachable), then a `RaftBatch` as a peer's stream carries it. Each message
//!   goes through the peer service's checks ([`crate::peer::decode_message`]) and the Raft
//!   thread's ([`crate::raft_node::step_peer_message`]) into a raw node of a 3-member
//!   cluster on raft-rs's in-memory storage (bootstrapped at index 1, term 1, as a new
//!   member is), whose readies are persisted and advanced as the raft-rs examples do.
//! - Errors are fine; a panic is the finding.

use oxcd_api::oxcdpb::RaftBatch;
use prost::Message as _;
use raft::eraftpb::{ConfState, Snapshot};
use raft::storage::MemStorage;
use raft::RawNode;

/// Runs one input (see the module doc); returns how many messages were stepped.
pub fn raft_message(data: &[u8]) -> Result<usize, String> {
    let Some((&setup, body)) = data.split_first() else {
        return Ok(0);
    };
    let batch = RaftBatch::decode(body).map_err(|e| e.to_string())?;
    // As `RaftLog::bootstrap` leaves a new member: the membership as a snapshot at index 1,
    // term 1 (a member never runs at term 0).
    let storage = MemStorage::new();
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 1;
    snap.mut_metadata().term = 1;
    snap.mut_metadata()
        .set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    storage
        .wl()
        .apply_snapshot(snap)
        .map_err(|e| e.to_string())?;
    let cfg = raft::Config {
        id: 1,
        election_tick: 10,
        heartbeat_tick: 1,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 512,
        check_quorum: true,
        pre_vote: setup & 2 != 0,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut node = RawNode::new(&cfg, storage, &logger).map_err(|e| e.to_string())?;
    if setup & 1 != 0 {
        node.campaign().map_err(|e| e.to_string())?;
        handle_ready(&mut node);
    }
    let mut stepped = 0;
    for bytes in &batch.messages {
        let m = match crate::peer::decode_message(bytes, 1, |id| (1..=3).contains(&id)) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => continue,
        };
        if crate::raft_node::step_peer_message(&mut node, m).is_ok() {
            stepped += 1;
        }
        handle_ready(&mut node);
    }
    node.tick();
    handle_ready(&mut node);
    Ok(stepped)
}

/// Persists and advances a ready, as raft-rs's examples do.
fn handle_ready(node: &mut RawNode<MemStorage>) {
    if !node.has_ready() {
        return;
    }
    let mut rd = node.ready();
    if !rd.snapshot().is_empty() {
        let snap = rd.snapshot().clone();
        let _ = node.mut_store().wl().apply_snapshot(snap);
    }
    let _ = node.mut_store().wl().append(rd.entries());
    if let Some(hs) = rd.hs() {
        node.mut_store().wl().set_hardstate(hs.clone());
    }
    let _ = rd.take_committed_entries();
    let mut light = node.advance(rd);
    if let Some(commit) = light.commit_index() {
        node.mut_store().wl().mut_hard_state().set_commit(commit);
    }
    let _ = light.take_committed_entries();
    node.advance_apply();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer (fuzz/README.md): a heartbeat committing past the follower's
    /// log made raft-rs panic ("to_commit 2 is out of range [last_index 0]").
    #[test]
    fn a_heartbeat_committing_past_the_log_is_refused_not_a_panic() {
        let input = [
            0x00, 0x0a, 0x19, 0x08, 0x03, 0x10, 0x01, 0x18, 0x02, 0xa0, 0x02, 0x3a, 0x04, 0x10,
            0x02, 0x18, 0x01, 0x3a, 0x07, 0x10, 0x02, 0x18, 0x02, 0x22, 0x01, 0x78, 0x40, 0x01,
            0x0a, 0x0a, 0x08, 0x08, 0x10, 0x01, 0x18, 0x02, 0x20, 0x02, 0x40, 0x02,
        ];
        assert_eq!(raft_message(&input), Ok(0));
    }

    /// Found by the fuzzer: a read index request with no entry, stepped into a leader,
    /// made raft-rs index `entries[0]` (out of bounds).
    #[test]
    fn a_read_index_without_its_context_is_refused_not_a_panic() {
        let input = [
            0x01, 0x0a, 0x08, 0x08, 0x06, 0x10, 0x01, 0x18, 0x02, 0x20, 0x01, 0x0a, 0x0a, 0x08,
            0x04, 0x10, 0x01, 0x18, 0x02, 0x28, 0x01, 0x30, 0x01, 0x0a, 0x08, 0x08, 0x09, 0x10,
            0x01, 0xee, 0xfc, 0xdf, 0xfe, 0x0a, 0x06, 0x08, 0x0f, 0x10, 0x01, 0x18, 0x02, 0x28,
            0x01, 0x3a, 0x05, 0x22, 0xf5, 0x98, 0x8b, 0x87,
        ];
        assert!(raft_message(&input).is_ok());
    }

    /// Found by the fuzzer: a pre-vote answered by a node at term 0 made raft-rs panic
    /// ("term should be set when sending MsgRequestPreVoteResponse"). Members never run at
    /// term 0 (the harness now starts at term 1, as bootstrap does), and messages breaking
    /// raft's term rule are refused.
    #[test]
    fn messages_breaking_the_term_rule_are_refused_not_a_panic() {
        let input = [
            0x02, 0x0a, 0x08, 0x18, 0x03, 0x08, 0x11, 0x10, 0x01, 0x18, 0x03, 0x20, 0x05,
        ];
        assert!(raft_message(&input).is_ok());
        use protobuf::Message as _;
        for (t, term) in [
            (raft::eraftpb::MessageType::MsgRequestPreVote, 0),
            (raft::eraftpb::MessageType::MsgHeartbeat, 0),
            (raft::eraftpb::MessageType::MsgReadIndex, 3),
        ] {
            let mut m = raft::eraftpb::Message::default();
            m.set_msg_type(t);
            m.to = 1;
            m.from = 2;
            m.term = term;
            m.mut_entries().push(Default::default());
            let batch = RaftBatch {
                messages: vec![m.write_to_bytes().unwrap()],
            };
            let mut input = vec![0];
            input.extend(batch.encode_to_vec());
            assert_eq!(raft_message(&input), Ok(0), "{t:?} term {term}");
        }
    }

    /// Found by the fuzzer: a snapshot at index 10, term 0 made raft-rs "fast-forward" its
    /// commit past its log ("to_commit 10 is out of range [last_index 1]").
    #[test]
    fn a_snapshot_at_term_zero_is_refused_not_a_panic() {
        let input = [
            0x00, 0x0a, 0x18, 0x08, 0x07, 0x10, 0x01, 0x18, 0x02, 0x20, 0x03, 0x4a, 0x0e, 0x12,
            0x0c, 0x0a, 0x06, 0x08, 0x01, 0x78, 0x02, 0x08, 0x03, 0x10, 0x0a, 0x38, 0x03,
        ];
        assert_eq!(raft_message(&input), Ok(0));
    }

    /// Found by the fuzzer: a snapshot whose conf state has a learner and an outgoing
    /// voter but no voter made raft-rs panic ("unable to restore config ... removed all
    /// voters").
    #[test]
    fn a_snapshot_with_members_but_no_voter_is_refused_not_a_panic() {
        let input = [
            0x00, 0x0a, 0x08, 0x08, 0x0e, 0x10, 0x0e, 0xb6, 0xe8, 0x12, 0x0c, 0x0a, 0x00, 0x0a,
            0x18, 0x08, 0x07, 0x10, 0x01, 0x18, 0x02, 0x20, 0x03, 0x4a, 0x0e, 0x12, 0x0c, 0x0a,
            0x06, 0x12, 0x00, 0x10, 0x01, 0x18, 0x02, 0x10, 0x0a, 0x18, 0x03, 0x10, 0x0a, 0x18,
            0x03,
        ];
        assert!(raft_message(&input).is_ok());
    }

    /// Found by the fuzzer: a follower given a peer's leader transfer request forwarded it
    /// with its term, and raft-rs panicked ("term should not be set when sending
    /// MsgTransferLeader"). A real cluster can get there when leadership moved while a
    /// request was on its way.
    #[test]
    fn a_leader_transfer_to_a_follower_is_refused_not_a_panic() {
        use protobuf::Message as _;
        let mut hb = raft::eraftpb::Message::default();
        hb.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        (hb.to, hb.from, hb.term) = (1, 2, 3);
        let mut tl = raft::eraftpb::Message::default();
        tl.set_msg_type(raft::eraftpb::MessageType::MsgTransferLeader);
        (tl.to, tl.from, tl.term) = (1, 3, 3);
        let batch = RaftBatch {
            messages: vec![hb.write_to_bytes().unwrap(), tl.write_to_bytes().unwrap()],
        };
        let mut input = vec![0];
        input.extend(batch.encode_to_vec());
        assert_eq!(raft_message(&input), Ok(1));
    }

    /// Found by the fuzzer: a forwarded proposal without entries made the leader panic
    /// ("stepped empty MsgProp").
    #[test]
    fn an_empty_forwarded_proposal_is_refused_not_a_panic() {
        let input = [
            0x01, 0x0a, 0x08, 0x08, 0x06, 0x10, 0x01, 0x18, 0x02, 0x20, 0x02, 0x20, 0x02, 0x0a,
            0x0a, 0x08, 0x04, 0x10, 0x01, 0x18, 0x01, 0x58, 0x03, 0x08, 0x02, 0x0a, 0x0a, 0x20,
            0x04, 0x10, 0x01, 0x18, 0x01, 0x58, 0x03, 0x20, 0x02, 0x18, 0xaa, 0x02,
        ];
        assert!(raft_message(&input).is_ok());
    }

    /// A snapshot whose conf state repeats a voter: raft-rs panicked ("invalid restore").
    #[test]
    fn a_snapshot_with_a_repeated_voter_is_refused_not_a_panic() {
        use protobuf::Message as _;
        let mut m = raft::eraftpb::Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
        m.to = 1;
        m.from = 2;
        m.term = 3;
        let meta = m.mut_snapshot().mut_metadata();
        meta.index = 10;
        meta.term = 3;
        meta.mut_conf_state().voters = vec![1, 2, 2, 3];
        let batch = RaftBatch {
            messages: vec![m.write_to_bytes().unwrap()],
        };
        let mut input = vec![0];
        input.extend(batch.encode_to_vec());
        assert_eq!(raft_message(&input), Ok(0));
    }

    #[test]
    fn raft_message_corpus_replays_without_panic() {
        let mut stepped = 0;
        for (name, data) in oxcd_storage::fuzz_support::corpus("raft_message") {
            let r = raft_message(&data);
            stepped += r.as_ref().map_or(0, |n| *n);
            eprintln!("{name}: {r:?}");
        }
        assert!(stepped > 0, "no message of the corpus was stepped");
    }
}
