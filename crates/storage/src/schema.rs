//! The backend's schema: every table and every meta key, in one place (etcd's
//! `server/storage/schema`). Other crates name tables only through these constants.
//!
//! Invariants:
//! - Every table listed in [`SNAPSHOT_TABLES`] (and [`META_TABLE`]) is created when the backend opens, so a read
//!   transaction never misses one.
//! - Every table here travels in a Raft snapshot except [`META_TABLE`]'s member-local
//!   keys ([`META_LOCAL_MEMBER_ID`]), which identify this member and stay as they are.
//! - Meta values are big-endian `u64` unless a key's doc says otherwise.

use redb::TableDefinition;

/// A table of byte keys and byte values.
pub type BytesTable = TableDefinition<'static, &'static [u8], &'static [u8]>;
/// The meta table: string keys, byte values.
pub type MetaTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Revision-keyed MVCC data: key = revision bytes, value = encoded `mvccpb.KeyValue`.
/// Rows are added once and deleted only by compaction, which notes each deletion with
/// [`crate::WriteTx::note_key_deleted`] (an online defragmentation replays them).
pub const KEY_TABLE: BytesTable = TableDefinition::new("key");
/// Server metadata: consistent index/term, compaction revisions, identity, auth flags.
pub const META_TABLE: MetaTable = TableDefinition::new("meta");
/// Leases: lease id (big endian) -> encoded lease.
pub const LEASE_TABLE: BytesTable = TableDefinition::new("lease");
/// Cluster membership: member id (big endian) -> encoded `oxcdpb.MemberAttributes`.
pub const MEMBERS_TABLE: BytesTable = TableDefinition::new("members");
/// Auth users: user name -> encoded `authpb.User` (etcd's `authUsers` bucket).
pub const AUTH_USERS_TABLE: BytesTable = TableDefinition::new("authUsers");
/// Auth roles: role name -> encoded `authpb.Role` (etcd's `authRoles` bucket).
pub const AUTH_ROLES_TABLE: BytesTable = TableDefinition::new("authRoles");
/// Alarms: encoded `etcdserverpb.AlarmMember` -> empty (etcd's `alarm` bucket).
pub const ALARM_TABLE: BytesTable = TableDefinition::new("alarm");

/// The byte-keyed tables a Raft snapshot carries, in a fixed order.
pub const SNAPSHOT_TABLES: [BytesTable; 6] = [
    KEY_TABLE,
    LEASE_TABLE,
    MEMBERS_TABLE,
    AUTH_USERS_TABLE,
    AUTH_ROLES_TABLE,
    ALARM_TABLE,
];

/// META_TABLE: the raft index the backend's data is applied up to.
pub const META_CONSISTENT_INDEX: &str = "consistent_index";
/// META_TABLE: the raft term of [`META_CONSISTENT_INDEX`].
pub const META_TERM: &str = "term";
/// META_TABLE: the revision of the last compaction started (etcd's name).
pub const META_SCHEDULED_COMPACT_REV: &str = "scheduledCompactRev";
/// META_TABLE: the revision of the last compaction finished (etcd's name).
pub const META_FINISHED_COMPACT_REV: &str = "finishedCompactRev";
/// META_TABLE: this member's id; member-local, never replaced by a snapshot.
pub const META_LOCAL_MEMBER_ID: &str = "local_member_id";
/// META_TABLE: the cluster id fixed at bootstrap.
pub const META_CLUSTER_ID: &str = "cluster_id";
/// META_TABLE: whether auth is enabled (one byte, 0 or 1; etcd's `authEnabled`).
pub const META_AUTH_ENABLED: &str = "authEnabled";
/// META_TABLE: the auth store's revision (etcd's `authRevision`).
pub const META_AUTH_REVISION: &str = "authRevision";

/// Every meta key a Raft snapshot carries (all but the member-local ones).
pub const SNAPSHOT_META_KEYS: [&str; 7] = [
    META_CONSISTENT_INDEX,
    META_TERM,
    META_SCHEDULED_COMPACT_REV,
    META_FINISHED_COMPACT_REV,
    META_CLUSTER_ID,
    META_AUTH_ENABLED,
    META_AUTH_REVISION,
];
