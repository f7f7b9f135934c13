//! Command implementations and what they share: the connection built from the global
//! flags, the output format, timeouts and etcdctl's error texts.
//!
//! Invariant: a command prints its whole result only after its RPCs succeeded (except
//! streaming commands, which print as events arrive).

pub mod auth;
pub mod check;
pub mod cluster;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod mirror;
pub mod watch;

use std::future::Future;
use std::time::Duration;

use oxcd_client::{Client, ConnectOptions, TlsOptions};

use crate::cli::{Cli, Cmd, Global};
use crate::fmt::parse_go_duration;
use crate::{exit, CtlError, CtlResult};

/// `-w`: how results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Table,
    Protobuf,
}

/// What every command gets.
pub struct Ctx {
    pub g: Global,
    pub fmt: Format,
    pub command_timeout: Duration,
    opts: ConnectOptions,
    /// The last client made, to name its endpoint when the cluster cannot be reached.
    last: std::sync::Mutex<Option<Client>>,
}

/// etcdctl's text for an error, naming the endpoint when the cluster could not be reached.
pub fn describe(e: &oxcd_client::Error) -> String {
    use oxcd_client::Error as E;
    match e {
        E::Status(s) if s.code() == tonic::Code::DeadlineExceeded => {
            "context deadline exceeded".into()
        }
        E::Status(s) => s.message().to_string(),
        E::Connect { .. } => format!("context deadline exceeded ({e})"),
        other => other.to_string(),
    }
}

impl Ctx {
    fn new(g: Global) -> CtlResult<Ctx> {
        let fmt = match g.write_out.as_str() {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "table" => Format::Table,
            "protobuf" => Format::Protobuf,
            other => {
                return Err(CtlError::new(
                    exit::BAD_FEATURE,
                    format!("unknown output format {other:?}"),
                ))
            }
        };
        let dur = |s: &str, flag: &str| {
            parse_go_duration(s)
                .map_err(|e| CtlError::new(exit::BAD_ARGS, format!("--{flag}: {e}")))
        };
        let dial = dur(&g.dial_timeout, "dial-timeout")?;
        let command_timeout = dur(&g.command_timeout, "command-timeout")?;
        let user = match (&g.user, &g.password) {
            (None, _) => None,
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (Some(u), None) => match u.split_once(':') {
                Some((n, p)) => Some((n.to_string(), p.to_string())),
                None => {
                    return Err(CtlError::new(
                        exit::BAD_ARGS,
                        "password is required: use --user=name:password or --password",
                    ))
                }
            },
        };
        let tls_files = g.cacert.is_some() || g.cert.is_some() || g.key.is_some();
        let https = g.endpoints.iter().any(|e| e.starts_with("https://"));
        let tls = (tls_files || https || !g.insecure_transport).then(|| TlsOptions {
            ca_file: g.cacert.clone().map(Into::into),
            cert_file: g.cert.clone().map(Into::into),
            key_file: g.key.clone().map(Into::into),
            domain: None,
        });
        if g.insecure_skip_tls_verify {
            return Err(CtlError::new(
                exit::BAD_FEATURE,
                "--insecure-skip-tls-verify is not supported by oxcdctl; pass the CA with --cacert",
            ));
        }
        let opts = ConnectOptions {
            connect_timeout: dial,
            user,
            tls,
            ..Default::default()
        };
        Ok(Ctx {
            g,
            fmt,
            command_timeout,
            opts,
            last: std::sync::Mutex::new(None),
        })
    }

    /// A client of every `--endpoints` endpoint.
    pub async fn client(&self) -> CtlResult<Client> {
        self.client_of(&self.g.endpoints).await
    }

    /// A client of another cluster (make-mirror's destination): the global dial timeout,
    /// its own TLS and user.
    pub async fn client_with(
        &self,
        eps: &[String],
        tls: Option<TlsOptions>,
        user: Option<(String, String)>,
    ) -> CtlResult<Client> {
        let opts = ConnectOptions {
            connect_timeout: self.opts.connect_timeout,
            user,
            tls,
            ..Default::default()
        };
        self.connect(eps, &opts).await
    }

    /// A client of the given endpoints (same options).
    pub async fn client_of(&self, eps: &[String]) -> CtlResult<Client> {
        let c = self.connect(eps, &self.opts).await?;
        *self.last.lock().expect("ctx lock") = Some(c.clone());
        Ok(c)
    }

    async fn connect(&self, eps: &[String], opts: &ConnectOptions) -> CtlResult<Client> {
        let dial = opts.connect_timeout;
        match tokio::time::timeout(
            dial + Duration::from_millis(200),
            Client::connect_with(eps, opts),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            // etcdctl fails to make its client when the login is refused: a bad connection.
            Ok(Err(e))
                if e.message()
                    .is_some_and(|m| m.contains("authentication failed")) =>
            {
                Err(CtlError::new(exit::BAD_CONNECTION, describe(&e)))
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CtlError::new(
                exit::BAD_CONNECTION,
                format!("context deadline exceeded (dialing {})", eps.join(",")),
            )),
        }
    }

    /// Run `f` under `--command-timeout`.
    pub async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, oxcd_client::Error>>,
    ) -> CtlResult<T> {
        match tokio::time::timeout(self.command_timeout, f).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(CtlError::new(exit::ERROR, "context deadline exceeded")),
        }
    }

    /// The error for a format a command cannot print.
    pub fn unsupported(&self) -> CtlError {
        CtlError::new(
            exit::BAD_FEATURE,
            format!("{} not supported as output format", self.g.write_out),
        )
    }
}

/// Print raw protobuf bytes (`-w protobuf`).
pub fn print_pb(m: &impl prost::Message) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&m.encode_to_vec());
    let _ = out.flush();
}

/// Arguments error with etcdctl's exit code 128.
pub fn bad_args(msg: impl Into<String>) -> CtlError {
    CtlError::new(exit::BAD_ARGS, msg)
}

/// Go's `strconv` error text for a failed integer parse of `s`.
pub fn go_parse_err(func: &str, s: &str, e: &std::num::ParseIntError) -> String {
    use std::num::IntErrorKind::*;
    let why = match e.kind() {
        PosOverflow | NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    format!("strconv.{func}: parsing {s:?}: {why}")
}

/// Parse a hexadecimal member id.
pub fn parse_hex(s: &str, what: &str) -> CtlResult<u64> {
    u64::from_str_radix(s, 16).map_err(|e| {
        bad_args(format!(
            "bad {what} ID arg ({}), expecting ID in Hex",
            go_parse_err("ParseUint", s, &e)
        ))
    })
}

/// Parse a hexadecimal lease id (etcdctl parses it as a signed 64-bit number).
pub fn parse_lease(s: &str) -> CtlResult<i64> {
    i64::from_str_radix(s, 16).map_err(|e| {
        bad_args(format!(
            "bad lease ID arg ({}), expecting ID in Hex",
            go_parse_err("ParseInt", s, &e)
        ))
    })
}

pub async fn run(cli: Cli) -> CtlResult {
    let ctx = Ctx::new(cli.global)?;
    dispatch(&ctx, cli.cmd).await.map_err(|e| match e {
        // A transport failure (not an etcd error): say which endpoint failed.
        CtlError::Client(oxcd_client::Error::Status(s))
            if s.code() == tonic::Code::Unavailable && !s.message().starts_with("etcdserver:") =>
        {
            let ep = ctx
                .last
                .lock()
                .expect("ctx lock")
                .as_ref()
                .map(|c| c.current_endpoint().to_string())
                .unwrap_or_default();
            CtlError::new(
                exit::BAD_CONNECTION,
                format!("{ep}: unavailable: {}", s.message()),
            )
        }
        other => other,
    })
}

async fn dispatch(ctx: &Ctx, cmd: Cmd) -> CtlResult {
    match cmd {
        Cmd::Get(a) => kv::get(ctx, a).await,
        Cmd::Put(a) => kv::put(ctx, a).await,
        Cmd::Del(a) => kv::del(ctx, a).await,
        Cmd::Txn(a) => kv::txn(ctx, a).await,
        Cmd::Compaction(a) => kv::compaction(ctx, a).await,
        Cmd::Watch(a) => watch::watch(ctx, a).await,
        Cmd::Lease(c) => lease::run(ctx, c).await,
        Cmd::Member(c) => cluster::member(ctx, c).await,
        Cmd::Endpoint(a) => cluster::endpoint(ctx, a).await,
        Cmd::MoveLeader { transferee } => cluster::move_leader(ctx, &transferee).await,
        Cmd::Alarm(c) => cluster::alarm(ctx, c).await,
        Cmd::Defrag { cluster } => cluster::defrag(ctx, cluster).await,
        Cmd::Snapshot(c) => cluster::snapshot(ctx, c).await,
        Cmd::Auth(c) => auth::auth(ctx, c).await,
        Cmd::User(c) => auth::user(ctx, c).await,
        Cmd::Role(c) => auth::role(ctx, c).await,
        Cmd::Lock(a) => lock::lock(ctx, a).await,
        Cmd::Elect(a) => lock::elect(ctx, a).await,
        Cmd::Check(c) => check::check(ctx, c).await,
        Cmd::MakeMirror(a) => mirror::make_mirror(ctx, a).await,
        Cmd::Version => {
            println!("oxcdctl version: {}", env!("CARGO_PKG_VERSION"));
            println!("API version: 3.4");
            Ok(())
        }
    }
}
