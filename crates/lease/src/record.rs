//! The persisted lease record: etcd's `leasepb.Lease` (same protobuf fields), stored in
//! `LEASE_TABLE` under the lease id as 8 big-endian bytes (etcd's `int64ToBytes`).

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// The checkpointed remaining TTL in seconds; 0 when never checkpointed.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// The backend key of lease `id`.
pub fn lease_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}
