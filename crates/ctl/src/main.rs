//! oxcdctl: etcdctl v3's commands, flags, output formats, exit codes and `ETCDCTL_*`
//! environment variables, over `oxcd-client`.
//!
//! Invariants:
//! - Output goes to stdout (stderr where etcdctl uses it, e.g. `endpoint health`) exactly
//!   as etcdctl 3.4 prints it for the chosen `-w` format;
//!   errors go to stderr as `Error: <message>` with etcdctl's exit codes ([`exit`]); an
//!   error with an empty message exits silently (its command printed the failure).
//! - Beyond etcdctl: a failure to reach the cluster names the endpoint that failed.
//! - Every unary command runs under `--command-timeout`; streaming commands (watch,
//!   keep-alive, lock, elect, snapshot) run until done or interrupted.

mod cli;
mod cmd;
mod fmt;
mod json;
mod txn_parse;

use std::process::ExitCode;

use clap::Parser;

/// etcdctl's exit codes.
pub mod exit {
    pub const ERROR: u8 = 1;
    pub const BAD_CONNECTION: u8 = 2;
    pub const INVALID_INPUT: u8 = 3;
    pub const BAD_FEATURE: u8 = 4;
    pub const INTERRUPTED: u8 = 5;
    pub const IO: u8 = 6;
    pub const BAD_ARGS: u8 = 128;
}

/// The one error type of oxcdctl: a message and the exit code it ends with.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A failure with etcdctl's text and exit code.
    #[error("{msg}")]
    Exit { code: u8, msg: String },
    /// An RPC error; printed with etcd's message.
    #[error("{}", cmd::describe(.0))]
    Client(#[from] oxcd_client::Error),
}

impl CtlError {
    pub fn new(code: u8, msg: impl Into<String>) -> Self {
        CtlError::Exit {
            code,
            msg: msg.into(),
        }
    }
    fn code(&self) -> u8 {
        match self {
            CtlError::Exit { code, .. } => *code,
            CtlError::Client(oxcd_client::Error::Connect { .. })
            | CtlError::Client(oxcd_client::Error::InvalidEndpoint { .. }) => exit::BAD_CONNECTION,
            CtlError::Client(_) => exit::ERROR,
        }
    }
}

pub type CtlResult<T = ()> = Result<T, CtlError>;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprintln!("Error: {first}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match rt.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An empty message: the command already said what failed (etcdctl's bare
            // `os.Exit`).
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("Error: {msg}");
            }
            ExitCode::from(e.code())
        }
    }
}
