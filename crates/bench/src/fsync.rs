//! `fsync-probe`: how long one small write + fdatasync takes on a directory's disk, the
//! floor under every durable write of etcd and oxcd (both sync their WAL per commit batch).
//!
//! Invariants:
//! - The probe file is preallocated and synced before timing, so each timed round is an
//!   in-place block write + `fdatasync` (like a WAL append into a preallocated segment),
//!   without file-size metadata updates.
//! - The probe file is removed afterwards (it lives in a temp dir inside `--dir`).

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use crate::report::Report;
use crate::runner::Recorder;

/// `fsync-probe` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct FsyncArgs {
    /// Directory on the disk to probe.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Number of timed write+fdatasync rounds.
    #[arg(long, default_value_t = 200)]
    pub count: u64,
    /// Bytes written per round.
    #[arg(long, default_value_t = 4096)]
    pub block_size: usize,
}

/// Run the probe; the report's latencies are per write+fdatasync round.
pub fn probe(a: &FsyncArgs) -> std::io::Result<Report> {
    let dir = tempfile::Builder::new()
        .prefix("oxcd-fsync-probe")
        .tempdir_in(&a.dir)?;
    let path = dir.path().join("probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let count = a.count.max(1);
    let block = vec![0x5au8; a.block_size.max(1)];
    for _ in 0..count {
        f.write_all(&block)?;
    }
    f.sync_all()?;
    f.seek(SeekFrom::Start(0))?;
    let mut rec = Recorder::default();
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        crate::runner::record_duration(&mut rec.hist, t.elapsed());
    }
    let elapsed = start.elapsed();
    let mut report = Report::new("fsync-probe", count, &rec, elapsed);
    report.extra("dir", a.dir.display().to_string());
    report.extra("block_size", block.len());
    report.params = serde_json::to_value(a).unwrap_or_default();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Latency;
    use std::time::Duration;

    #[test]
    fn probe_times_every_round() {
        let dir = tempfile::tempdir().unwrap();
        let r = probe(&FsyncArgs {
            dir: dir.path().to_path_buf(),
            count: 5,
            block_size: 512,
        })
        .unwrap();
        assert_eq!(r.ops, 5);
        assert!(r.latency_ms.p50 > 0.0);
        assert!(r.latency_ms.max < Duration::from_secs(60).as_secs_f64() * 1000.0);
        assert_ne!(r.latency_ms, Latency::default());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe dir removed"
        );
    }
}
