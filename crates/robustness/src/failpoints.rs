//! The fail-point fault: respawn one member from a build with the server's `failpoints`
//! Cargo feature and `FAILPOINTS=<point>=<action>` so that it panics at a chosen point (WAL
//! save, backend commit, compaction), let it crash, then restart it normally. A compaction
//! point gets a compaction forced through the armed member, so every point can fire.
//!
//! The failpoints build lives in its own target dir (`cargo build -p oxcd-server --features
//! failpoints --target-dir target/failpoints`) and is found through `OXCD_FAILPOINTS_BIN`.
//!
//! Invariants:
//! - A crash at the armed fail point is expected and is not a violation; any other exit of
//!   the armed member, or a fail point that panicked without the process exiting (a
//!   half-dead server), is reported as a violation.
//! - After [`inject`] returns the member runs the normal binary without `FAILPOINTS`; every
//!   wait is bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oxcd_testkit::cmd::describe_status;
use oxcd_testkit::SpawnExtras;
use rand::rngs::StdRng;
use rand::Rng;

use crate::cluster::Cluster;

/// The fail points the fault cycles through: WAL save, backend commit, compaction.
pub const POINTS: &[&str] = &[
    "walBeforeSync",
    "beforeCommit",
    "compactBeforeCommit",
    "raftBeforeSave",
    "afterCommit",
    "compactBeforeSetFinishedCompact",
    "walAfterSync",
    "raftAfterSave",
    "compactAfterCommit",
];

/// Env var naming the failpoints build of oxcd.
pub const BIN_ENV: &str = "OXCD_FAILPOINTS_BIN";
/// Env var that lets the fail-point scenario be skipped when no such build exists.
pub const SKIP_ENV: &str = "OXCD_SKIP_FAILPOINTS";

/// The failpoints build from `OXCD_FAILPOINTS_BIN`, or why it cannot be used.
pub fn bin() -> Result<PathBuf, String> {
    let p = std::env::var_os(BIN_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
            "{BIN_ENV} is not set: build the failpoints binary with `cargo build -p oxcd-server \
             --features failpoints --target-dir target/failpoints` and set {BIN_ENV}=\
             <workspace>/target/failpoints/debug/oxcd (or set {SKIP_ENV}=1 to skip)"
        )
        })?;
    if !p.is_file() {
        return Err(format!(
            "{BIN_ENV}={} does not exist: build it with `cargo build -p oxcd-server --features \
             failpoints --target-dir target/failpoints` (or set {SKIP_ENV}=1 to skip)",
            p.display()
        ));
    }
    Ok(p)
}

/// Whether `OXCD_SKIP_FAILPOINTS=1`.
pub fn skip_requested() -> bool {
    std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
}

/// A panic action for `point`: after a few hits or with a probability. Compaction runs
/// rarely (about every two seconds of traffic), so its points panic on the first hit.
fn action(point: &str, rng: &mut StdRng) -> String {
    if point.starts_with("compact") {
        return "1*panic".into();
    }
    if rng.gen_bool(0.5) {
        format!("{}*off->1*panic", rng.gen_range(0..40))
    } else {
        format!("{}%panic", rng.gen_range(2..25))
    }
}

/// What one injection found.
pub struct Outcome {
    pub desc: String,
    pub violation: Option<String>,
    /// The point, if it fired.
    pub fired: Option<&'static str>,
}

/// Arms fail point number `round` (cycling through [`POINTS`]) on member `target`, waits
/// (3 s; 6 s for the rarer compaction points) for the crash, and restarts the member
/// normally.
pub fn inject(
    c: &mut Cluster,
    target: usize,
    round: usize,
    rng: &mut StdRng,
) -> Result<Outcome, String> {
    let fp_bin = bin()?;
    let point = POINTS[round % POINTS.len()];
    let window = Duration::from_secs(if point.starts_with("compact") { 6 } else { 3 });
    let spec = format!("{point}={}", action(point, rng));
    let name = c.members[target].name.clone();
    c.kill9(target);
    let log_from = std::fs::metadata(c.members[target].log_path()).map_or(0, |m| m.len());
    let extras = SpawnExtras::failpoints(fp_bin, &spec);
    c.try_spawn_with(target, &extras)?;
    c.log(format!("armed FAILPOINTS={spec} on {name}"));
    let mut deadline = Instant::now() + window;
    if point.starts_with("compact") {
        force_compaction(c, target, deadline);
        // The forced compaction may have used up the window: give the crash time to land.
        deadline = deadline.max(Instant::now() + Duration::from_secs(3));
    }
    let mut status = None;
    while Instant::now() < deadline {
        if let Some(st) = c.members[target].exited() {
            status = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = c.members[target].log();
    let since = log.get(log_from as usize..).unwrap_or("");
    let fired = since.contains(&format!("failpoint {point} panic"));
    let (desc, violation) = match status {
        Some(st) if fired => (
            format!(
                "FAILPOINTS={spec} on {name}: crashed ({}), restarted",
                describe_status(&st)
            ),
            None,
        ),
        Some(st) => (
            format!("FAILPOINTS={spec} on {name}: exited without the fail point"),
            Some(format!(
                "member {name} armed with FAILPOINTS={spec} exited ({}) but not at the fail point; log since its start:\n{}",
                describe_status(&st),
                tail(since, 3000)
            )),
        ),
        None if fired => {
            c.kill9(target);
            (
                format!("FAILPOINTS={spec} on {name}: panicked but did not exit"),
                Some(format!(
                    "member {name}: fail point {point} panicked but the process kept running for {window:?} (a panicking thread must take the server down); log since its start:\n{}",
                    tail(since, 3000)
                )),
            )
        }
        None => {
            c.kill9(target);
            (
                format!("FAILPOINTS={spec} on {name}: not hit within {window:?}, killed"),
                None,
            )
        }
    };
    c.try_spawn(target)?;
    Ok(Outcome {
        desc,
        violation,
        fired: fired.then_some(point),
    })
}

/// Compaction is rare in traffic: once the armed member serves, compact the cluster at its
/// current revision so that the member reaches its compaction fail point (bounded by
/// `deadline`; a failure here only means the point may not fire, which the run reports).
fn force_compaction(c: &mut Cluster, target: usize, deadline: Instant) {
    while Instant::now() < deadline {
        if let Ok(st) = c.status(target) {
            let out = c.etcdctl(target, &["compact", &st.revision.to_string()]);
            c.log(format!(
                "forced compaction at {} through {}: {}{}",
                st.revision,
                c.members[target].name,
                out.stdout.trim(),
                out.stderr.trim()
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(s: &str, bytes: usize) -> &str {
    let mut i = s.len().saturating_sub(bytes);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
