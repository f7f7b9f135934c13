//! `oxcdutl`: offline tools over an oxcd data dir or snapshot file (etcd's `etcdutl`).
//!
//! - `snapshot status FILE [-w simple|json|table]`: hash, revision, total keys and size of a
//!   snapshot saved with `etcdctl snapshot save` (or `oxcdctl`), after checking its framing,
//!   row count and sha256; a truncated or corrupt file is refused.
//! - `snapshot restore FILE --data-dir … --name … --initial-cluster … --initial-cluster-token …
//!   --initial-advertise-peer-urls …`: builds a new member's data dir. The member joins a
//!   new cluster when started with the same flags (its cluster and member ids come from
//!   them, as etcd's). Revisions never go back: by default the revision is bumped by 1e9
//!   and marked compacted (etcd 3.6's `--bump-revision`/`--mark-compacted`), so a watcher
//!   of the old cluster gets a compaction, never stale data; `--bump-revision 0` restores
//!   the revisions as they were.
//!
//! Invariant: nothing is written before the whole snapshot has been verified, and the
//! data dir appears only complete (see `oxcd_storage::snapshot`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxcd_storage::{restore_backend, snapshot_status, RestoreOptions, SnapshotStatus};

#[derive(Parser)]
#[command(
    name = "oxcdutl",
    about = "Offline tools for oxcd data (etcdutl's snapshot commands)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Snapshot files
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Gets backend snapshot status of a given file
    Status {
        filename: PathBuf,
        /// simple, json or table
        #[arg(short = 'w', long = "write-out", default_value = "simple")]
        write_out: String,
    },
    /// Restores a snapshot into a new member's data dir
    Restore {
        filename: PathBuf,
        /// Path to the data directory (default: NAME.oxcd)
        #[arg(long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// Human-readable name for this member
        #[arg(long, default_value = "default")]
        name: String,
        /// Initial cluster configuration for restore bootstrap
        #[arg(
            long = "initial-cluster",
            default_value = "default=http://localhost:2380"
        )]
        initial_cluster: String,
        /// Initial cluster token for the cluster during restore bootstrap
        #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// This member's peer URLs to advertise to the rest of the cluster
        #[arg(
            long = "initial-advertise-peer-urls",
            default_value = "http://localhost:2380"
        )]
        initial_advertise_peer_urls: String,
        /// How much to add to the snapshot's revision (0: keep it)
        #[arg(long = "bump-revision", default_value_t = RestoreOptions::default().bump_revision)]
        bump_revision: u64,
        /// Mark the bumped revision compacted (required when --bump-revision > 0)
        #[arg(long = "mark-compacted", default_value_t = true, action = clap::ArgAction::Set,
              num_args = 0..=1, default_missing_value = "true")]
        mark_compacted: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Snapshot(SnapshotCmd::Status {
            filename,
            write_out,
        }) => status(&filename, &write_out),
        Cmd::Snapshot(SnapshotCmd::Restore {
            filename,
            data_dir,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            bump_revision,
            mark_compacted,
        }) => {
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.oxcd")));
            check_cluster_flags(&name, &initial_cluster, &initial_advertise_peer_urls)
                .and_then(|()| {
                    let opts = RestoreOptions {
                        bump_revision,
                        mark_compacted: mark_compacted && bump_revision > 0,
                    };
                    restore(&filename, &data_dir, &opts)
                })
                .map(|msg| {
                    println!("{msg}");
                    println!(
                        "start the member with --data-dir {} --name {name} --initial-cluster {initial_cluster} --initial-cluster-token {initial_cluster_token} --initial-advertise-peer-urls {initial_advertise_peer_urls}",
                        data_dir.display()
                    );
                })
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(file: &Path, write_out: &str) -> Result<(), String> {
    let st = snapshot_status(file).map_err(|e| e.to_string())?;
    match write_out {
        "simple" => println!(
            "{:x}, {}, {}, {}",
            st.hash,
            st.revision,
            st.total_keys,
            si_bytes(st.total_size)
        ),
        "json" => println!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}",
            st.hash, st.revision, st.total_keys, st.total_size
        ),
        "table" => print_table(&st),
        other => return Err(format!("unsupported output format {other:?}")),
    }
    Ok(())
}

fn print_table(st: &SnapshotStatus) {
    let cells = [
        format!("{:x}", st.hash),
        st.revision.to_string(),
        st.total_keys.to_string(),
        si_bytes(st.total_size),
    ];
    let heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let widths: Vec<usize> = heads
        .iter()
        .zip(&cells)
        .map(|(h, c)| h.len().max(c.len()) + 2)
        .collect();
    let line: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(*w)))
        .collect();
    let row = |vals: &[String]| -> String {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("|{v:^w$}"))
            .collect::<String>()
            + "|"
    };
    println!("{line}+");
    println!("{}", row(&heads.map(String::from)));
    println!("{line}+");
    println!("{}", row(&cells));
    println!("{line}+");
}

/// go-humanize's `Bytes` (SI units), as etcdctl prints sizes.
fn si_bytes(n: u64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let v = n as f64 / 1000f64.powi(e as i32);
    if v < 10.0 {
        format!("{v:.1} {}", units[e])
    } else {
        format!("{v:.0} {}", units[e])
    }
}

/// etcd's checks: the name is in the initial cluster with exactly the advertised peer URLs.
fn check_cluster_flags(name: &str, initial_cluster: &str, advertise: &str) -> Result<(), String> {
    let mut mine = Vec::new();
    for pair in initial_cluster.split(',').filter(|p| !p.is_empty()) {
        let (n, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("invalid --initial-cluster entry {pair:?} (want name=url)"))?;
        if n == name {
            mine.push(url.to_string());
        }
    }
    if mine.is_empty() {
        return Err(format!(
            "couldn't find local name {name:?} in the initial cluster configuration"
        ));
    }
    let mut adv: Vec<String> = advertise.split(',').map(str::to_string).collect();
    mine.sort();
    adv.sort();
    if mine != adv {
        return Err(format!(
            "--initial-cluster has {name}={} but missing from --initial-advertise-peer-urls={advertise}",
            mine.join(",")
        ));
    }
    Ok(())
}

fn restore(file: &Path, data_dir: &Path, opts: &RestoreOptions) -> Result<String, String> {
    if data_dir.exists() {
        return Err(format!(
            "data-dir {:?} exists",
            data_dir.display().to_string()
        ));
    }
    // Verified before anything is created (restore_backend checks it again as it reads).
    snapshot_status(file).map_err(|e| e.to_string())?;
    let snap_dir = data_dir.join("member").join("snap");
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| format!("creating {}: {e}", snap_dir.display()))?;
    match restore_backend(file, &snap_dir.join("db"), opts, |_| Ok(())) {
        Ok(info) => Ok(format!(
            "restored snapshot {} into {}: revision {}, compact revision {}, {} rows",
            file.display(),
            data_dir.display(),
            info.revision,
            info.compact_revision,
            info.status.total_keys
        )),
        Err(e) => {
            // Nothing usable was written: leave no half-made data dir behind.
            let _ = std::fs::remove_dir_all(data_dir);
            Err(e.to_string())
        }
    }
}
