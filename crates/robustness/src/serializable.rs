//! Serializable reads never go back in time per member: for two successful serializable
//! reads served by the same member slot with the same data generation (a wiped and re-added
//! member starts over), if the first returned before the second was invoked, the second's
//! header revision is not lower. (Restarts with the same data directory are included: etcd
//! only serves after re-applying its log.) Their *content* is checked by the replay.

use std::collections::BTreeMap;

use crate::history::{Op, Request};

/// Returns violations (each with the two reads).
pub fn check(ops: &[Op]) -> (usize, Vec<String>) {
    let mut per: BTreeMap<(usize, u32), Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let (
            Request::Get {
                serializable: true, ..
            },
            Some(_),
        ) = (&op.req, op.ok())
        {
            per.entry((op.member, op.data_gen)).or_default().push(op);
        }
    }
    let mut n = 0;
    let mut out = Vec::new();
    for ((m, g), mut v) in per {
        n += v.len();
        v.sort_by_key(|o| o.ret);
        // Sweep by invoke time over reads sorted by return time.
        let mut by_inv = v.clone();
        by_inv.sort_by_key(|o| o.inv);
        let mut best: Option<&Op> = None;
        let mut i = 0;
        for o in by_inv {
            while i < v.len() && v[i].ret < o.inv {
                if best.is_none_or(|b| v[i].ok().unwrap().rev() > b.ok().unwrap().rev()) {
                    best = Some(v[i]);
                }
                i += 1;
            }
            if let Some(b) = best {
                let (rb, ro) = (b.ok().unwrap().rev(), o.ok().unwrap().rev());
                if ro < rb && out.len() < 20 {
                    out.push(format!(
                        "serializable read went back in time on member {m} (data gen {g}): revision {ro} after {rb}:\n    {b}\n    {o}"
                    ));
                }
            }
        }
    }
    (n, out)
}
