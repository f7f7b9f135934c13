//! The hash of the whole backend (etcd's `backend.Hash`, answered by `Maintenance.Hash`).
//!
//! Invariant: crc32 (Castagnoli) over, table by table in name order (bolt's bucket order),
//! the table's name and then every key and value in key order, from one read transaction;
//! the meta keys that differ between members for the same data (consistent index, term,
//! local member id; etcd ignores its first two) are left out.

use redb::{ReadableTable, TableHandle};

use crate::backend::Backend;
use crate::schema::{
    META_CONSISTENT_INDEX, META_LOCAL_MEMBER_ID, META_TABLE, META_TERM, SNAPSHOT_TABLES,
};
use crate::Result;

impl Backend {
    /// The hash of every table (etcd's `Hash` RPC value).
    pub fn hash(&self) -> Result<u32> {
        let rtx = self.read_tx()?;
        let mut names: Vec<&str> = SNAPSHOT_TABLES.iter().map(|t| t.name()).collect();
        names.push(META_TABLE.name());
        names.sort_unstable();
        let mut crc = 0u32;
        for name in names {
            crc = crc32c::crc32c_append(crc, name.as_bytes());
            if name == META_TABLE.name() {
                let t = rtx.open_table(META_TABLE)?;
                for row in t.iter()? {
                    let (k, v) = row?;
                    let k = k.value();
                    if [META_CONSISTENT_INDEX, META_TERM, META_LOCAL_MEMBER_ID].contains(&k) {
                        continue;
                    }
                    crc = crc32c::crc32c_append(crc, k.as_bytes());
                    crc = crc32c::crc32c_append(crc, v.value());
                }
                continue;
            }
            let def = SNAPSHOT_TABLES
                .iter()
                .find(|t| t.name() == name)
                .expect("listed above");
            let t = rtx.open_table(*def)?;
            for row in t.iter()? {
                let (k, v) = row?;
                crc = crc32c::crc32c_append(crc, k.value());
                crc = crc32c::crc32c_append(crc, v.value());
            }
        }
        Ok(crc)
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::{KEY_TABLE, META_TABLE};
    use crate::{Backend, BackendConfig};

    #[test]
    fn hash_changes_with_data_but_not_with_the_consistent_index() {
        let dir = tempfile::tempdir().unwrap();
        let a = Backend::open(&dir.path().join("a"), BackendConfig::default()).unwrap();
        let b = Backend::open(&dir.path().join("b"), BackendConfig::default()).unwrap();
        assert_eq!(a.hash().unwrap(), b.hash().unwrap());
        for (be, ci) in [(&a, 5), (&b, 9)] {
            let mut tx = be.write_tx().unwrap();
            tx.tx
                .open_table(KEY_TABLE)
                .unwrap()
                .insert(b"k".as_slice(), b"v".as_slice())
                .unwrap();
            tx.tx
                .open_table(META_TABLE)
                .unwrap()
                .insert("local_member_id", ci.to_string().as_bytes())
                .unwrap();
            tx.set_consistent_index(ci, 1).unwrap();
            be.commit(tx).unwrap();
        }
        let h = a.hash().unwrap();
        assert_eq!(h, b.hash().unwrap());
        let tx = a.write_tx().unwrap();
        tx.tx
            .open_table(KEY_TABLE)
            .unwrap()
            .insert(b"k2".as_slice(), b"v".as_slice())
            .unwrap();
        a.commit(tx).unwrap();
        assert_ne!(a.hash().unwrap(), h);
    }
}
