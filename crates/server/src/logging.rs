//! Process-wide logging: structured lines on stderr in the shape of etcd's zap
//! logger, and a bridge that feeds raft-rs's `slog` records into `tracing`.
//!
//! # Invariants
//!
//! * All logging goes through `tracing`; [`init`] installs the one global
//!   subscriber (later calls are no-ops) and also captures `log`-crate records.
//! * In JSON mode every line is one self-contained JSON object
//!   `{"level":"info","ts":"<RFC 3339 UTC>","caller":"dir/file.rs:42","msg":"...",<fields>}`
//!   (zap's key names and lowercase levels), so tools that parse etcd's logs keep working.
//! * `RUST_LOG`, when set and valid, replaces the `--log-level` filter entirely.
//! * raft-rs records become `tracing` events with target `"raft"`; raft's
//!   chatty `info` is demoted to `debug`, except role changes and elections,
//!   which stay `info` like etcd's raft log lines.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogOutput;

/// Installs the global subscriber writing to each of `outputs` (`--log-outputs`; stderr
/// if empty): zap-style JSON lines if `json`, human-readable text otherwise. `level` is a
/// zap level name (`debug`, `info`, `warn`, `error`, `dpanic`, `panic`, `fatal`; anything
/// else means `info`); `RUST_LOG` overrides it. Does nothing if a global subscriber is
/// already installed.
pub fn init(level: &str, json: bool, outputs: &[LogOutput]) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives(level)));
    let to_stdout = outputs.contains(&LogOutput::Stdout);
    let to_stderr = outputs.contains(&LogOutput::Stderr) || !to_stdout;
    let writer = match (to_stderr, to_stdout) {
        (true, true) => BoxMakeWriter::new(std::io::stderr.and(std::io::stdout)),
        (false, true) => BoxMakeWriter::new(std::io::stdout),
        _ => BoxMakeWriter::new(std::io::stderr),
    };
    // Err only if a global subscriber already exists, which is fine (tests, embedding).
    let _ = subscriber(filter, json, writer).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(filter: EnvFilter, json: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        Box::new(builder.event_format(ZapJson).finish())
    } else {
        Box::new(builder.with_ansi(std::io::stderr().is_terminal()).finish())
    }
}

/// `EnvFilter` directives for a zap level. At `debug`, the HTTP/2 stack stays at
/// `info`: its debug output drowns everything else and etcd has no equivalent.
fn directives(level: &str) -> String {
    match level {
        "debug" => "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info".to_owned(),
        "warn" => "warn".to_owned(),
        "error" | "dpanic" | "panic" | "fatal" => "error".to_owned(),
        _ => "info".to_owned(),
    }
}

/// Formats events like zap's production JSON encoder.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);

        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;

        let mut line = String::with_capacity(128);
        line.push_str("{\"level\":");
        push_json_str(&mut line, zap_level(*meta.level()));
        line.push_str(",\"ts\":");
        push_json_str(&mut line, &ts);
        let caller = match (fields.caller.take(), meta.file(), meta.line()) {
            (Some(caller), _, _) => Some(caller),
            (None, Some(file), Some(line)) => Some(format!("{}:{line}", short_path(file))),
            _ => None,
        };
        if let Some(caller) = caller {
            line.push_str(",\"caller\":");
            push_json_str(&mut line, &caller);
        }
        if meta.target() == RAFT_TARGET {
            line.push_str(",\"logger\":\"raft\"");
        }
        line.push_str(",\"msg\":");
        push_json_str(&mut line, fields.msg.as_deref().unwrap_or_default());
        line.push_str(&fields.rest);
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn zap_level(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        // zap has no trace level.
        Level::DEBUG | Level::TRACE => "debug",
    }
}

/// zap's short caller: the last two path components (`server/src/raft.rs` → `src/raft.rs`).
fn short_path(path: &str) -> &str {
    let mut slashes = path.rmatch_indices(['/', '\\']);
    match (slashes.next(), slashes.next()) {
        (Some(_), Some((i, _))) => &path[i + 1..],
        _ => path,
    }
}

/// Collects an event's fields: `message` → `msg`, `caller` overrides the
/// call site, everything else is appended as `,"key":value`.
#[derive(Default)]
struct JsonFields {
    msg: Option<String>,
    caller: Option<String>,
    rest: String,
}

impl JsonFields {
    fn push_key(&mut self, field: &Field) -> bool {
        let name = field.name();
        // Keys the line already has, and tracing-log's metadata fields.
        if matches!(name, "level" | "ts" | "msg" | "logger") || name.starts_with("log.") {
            return false;
        }
        self.rest.push(',');
        push_json_str(&mut self.rest, name);
        self.rest.push(':');
        true
    }

    fn push_raw(&mut self, field: &Field, json: fmt::Arguments<'_>) {
        if self.push_key(field) {
            let _ = self.rest.write_fmt(json);
        }
    }

    fn push_string(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.msg = Some(value),
            "caller" => self.caller = Some(value),
            _ => {
                if self.push_key(field) {
                    push_json_str(&mut self.rest, &value);
                }
            }
        }
    }
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push_string(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push_string(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push_string(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push_raw(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push_raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push_raw(field, format_args!("{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push_raw(field, format_args!("{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push_raw(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.push_raw(field, format_args!("{value}"));
        } else {
            self.push_string(field, value.to_string());
        }
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The `tracing` target of events coming from raft-rs.
const RAFT_TARGET: &str = "raft";

/// A `slog::Logger` for raft-rs (`raft::Config` / `RawNode::new`) whose records
/// become `tracing` events with target `"raft"`. Record and logger key-values
/// are rendered into a `kv` field (`raft_id=1, term=2`), raft's source location
/// into `caller`.
pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

/// The `slog::Drain` behind [`raft_logger`].
struct TracingDrain;

/// raft-rs messages kept at `info` (the rest of raft's `info` becomes `debug`).
fn is_notable_raft_message(msg: &str) -> bool {
    msg.starts_with("became ") || msg.contains("election") || msg.contains("leader changed")
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        // tracing's levels are part of static call-site metadata, hence one
        // `event!` per level; key-values are rendered only if the event is enabled.
        macro_rules! forward {
            ($level:expr) => {
                if tracing::enabled!(target: RAFT_TARGET, $level) {
                    let caller = format!("{}:{}", short_path(record.file()), record.line());
                    let kv = render_kv(record, values);
                    tracing::event!(target: RAFT_TARGET, $level, caller = %caller, kv = %kv, "{}", record.msg());
                }
            };
        }
        match record.level() {
            slog::Level::Critical | slog::Level::Error => forward!(Level::ERROR),
            slog::Level::Warning => forward!(Level::WARN),
            slog::Level::Info => {
                if is_notable_raft_message(&record.msg().to_string()) {
                    forward!(Level::INFO)
                } else {
                    forward!(Level::DEBUG)
                }
            }
            slog::Level::Debug => forward!(Level::DEBUG),
            slog::Level::Trace => forward!(Level::TRACE),
        }
        Ok(())
    }
}

/// `key=value, key=value` for the record's key-values, then the logger's.
fn render_kv(record: &slog::Record<'_>, values: &slog::OwnedKVList) -> String {
    let mut kv = KvText(String::new());
    // Rendering into a String cannot fail.
    let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
    let _ = slog::KV::serialize(values, record, &mut kv);
    kv.0
}

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        if !self.0.is_empty() {
            self.0.push_str(", ");
        }
        let _ = write!(self.0, "{key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `MakeWriter` capturing everything into a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    /// Runs `f` under a JSON subscriber at `level` and returns the parsed lines.
    fn capture_json(level: &str, f: impl FnOnce()) -> Vec<serde_json::Value> {
        capture_raw(level, f)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Runs `f` under a JSON subscriber at `level` and returns the output.
    fn capture_raw(level: &str, f: impl FnOnce()) -> String {
        let capture = Capture::default();
        let filter = EnvFilter::new(directives(level));
        let sub = subscriber(filter, true, capture.clone());
        tracing::subscriber::with_default(sub, f);
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_look_like_zap() {
        let lines = capture_json("info", || {
            tracing::info!(member = "n1", term = 3u64, ok = true, "hello \"world\"\n");
            tracing::debug!("filtered out");
            tracing::warn!(error = %"boom", "careful");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["level"], "info");
        assert_eq!(first["msg"], "hello \"world\"\n");
        assert_eq!(first["member"], "n1");
        assert_eq!(first["term"], 3);
        assert_eq!(first["ok"], true);
        assert!(
            first["caller"].as_str().unwrap().contains("logging.rs:"),
            "{first}"
        );
        let ts = first["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
        assert_eq!(lines[1]["level"], "warn");
        assert_eq!(lines[1]["error"], "boom");
    }

    #[test]
    fn json_keys_in_zap_order() {
        let out = capture_raw("info", || tracing::info!(k = 1, "m"));
        assert!(out.starts_with(r#"{"level":"info","ts":""#), "{out}");
        assert!(out.contains(r#"Z","caller":"src/logging.rs:"#), "{out}");
        assert!(out.ends_with(",\"msg\":\"m\",\"k\":1}\n"), "{out}");
    }

    #[test]
    fn raft_records_become_tracing_events() {
        let lines = capture_json("debug", || {
            let logger = raft_logger().new(slog::o!("raft_id" => 7));
            slog::info!(logger, "became leader at term {}", 2; "term" => 2);
            slog::info!(logger, "sending append");
            slog::warn!(logger, "dropping message");
            slog::trace!(logger, "too detailed");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["level"], "info");
        assert_eq!(lines[0]["logger"], "raft");
        assert_eq!(lines[0]["msg"], "became leader at term 2");
        assert_eq!(lines[0]["kv"], "term=2, raft_id=7");
        assert!(
            lines[0]["caller"].as_str().unwrap().contains("logging.rs:"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1]["level"], "debug");
        assert_eq!(lines[2]["level"], "warn");
    }

    #[test]
    fn raft_debug_hidden_at_info() {
        let lines = capture_json("info", || {
            let logger = raft_logger();
            slog::info!(logger, "sending append");
            slog::info!(logger, "starting a new election");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["msg"], "starting a new election");
    }

    #[test]
    fn helpers() {
        assert_eq!(short_path("crates/server/src/raft.rs"), "src/raft.rs");
        assert_eq!(short_path("raft.rs"), "raft.rs");
        let mut s = String::new();
        push_json_str(&mut s, "a\u{1}\\");
        assert_eq!(s, r#""a\u0001\\""#);
        assert_eq!(directives("fatal"), "error");
        assert_eq!(directives("bogus"), "info");
    }
}
