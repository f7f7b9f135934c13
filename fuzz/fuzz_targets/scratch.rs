/// A scratch directory for one fuzzing process: under `OXCD_FUZZ_SCRATCH` (which
/// `scripts/fuzz.sh` creates on tmpfs and removes afterwards), else under /dev/shm when
/// there is one (no disk syncs per input), else the system temp dir. The directory lives
/// as long as the process (a static), so it is left behind unless the parent is removed.
pub fn scratch() -> tempfile::TempDir {
    let root = std::env::var_os("OXCD_FUZZ_SCRATCH")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(std::path::PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("oxcd-fuzz-")
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("scratch dir in {}: {e}", root.display()))
}
