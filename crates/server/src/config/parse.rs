//! Parsers for flag values in the forms etcd (Go) accepts: URLs and URL lists,
//! `--initial-cluster`, Go booleans, integers and durations, log levels and outputs.
//!
//! Invariant: each parser either returns the value or etcd's reason text (without the
//! `invalid value ... for flag` prefix, which the caller adds).

use std::time::Duration;

use url::Url;

use super::{format_url, LogLevel, LogOutput};

/// A comma-separated URL list (etcd's `UniqueURLs`): each URL checked by
/// [`parse_url`], then de-duplicated and sorted by etcd string form.
pub(super) fn parse_urls(s: &str) -> Result<Vec<Url>, String> {
    let mut urls = s
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(parse_url)
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err("no valid URLs given".to_owned());
    }
    urls.sort_by_cached_key(format_url);
    urls.dedup_by_key(|url| format_url(url));
    Ok(urls)
}

/// One URL, checked like etcd's `types.NewURLs`: scheme, `host:port`, no path.
/// `http` and `https` are accepted.
pub(super) fn parse_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    // The url crate normalises away what etcd checks (explicit port, empty
    // path), so check the raw text first: `scheme://[userinfo@]host:port[/path]...`.
    let (scheme, rest) = raw.split_once(':').unwrap_or(("", raw));
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => {}
        "unix" | "unixs" => return Err(format!("unix socket URLs are not supported yet: {raw}")),
        _ => {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {raw}"
            ))
        }
    }
    let after_slashes = rest.strip_prefix("//").unwrap_or("");
    let authority_end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let (authority, tail) = after_slashes.split_at(authority_end);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    if !has_host_port_form(host_port) {
        return Err(format!(
            r#"URL address does not have the form "host:port": {raw}"#
        ));
    }
    if tail.starts_with('/') {
        return Err(format!("URL must not contain a path: {raw}"));
    }
    Url::parse(raw).map_err(|err| format!("parse {raw:?}: {err}"))
}

/// Go's `net.SplitHostPort` succeeding with a non-empty port.
fn has_host_port_form(host_port: &str) -> bool {
    let port = if let Some(rest) = host_port.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, after)) => after.strip_prefix(':'),
            None => None,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => Some(port),
            _ => None,
        }
    };
    port.is_some_and(|port| !port.is_empty())
}

/// `name=url,name=url,...`; a name may appear several times.
pub(super) fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Url)>, String> {
    let members = s
        .split(',')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((name, url)) if !name.is_empty() => Ok((name.to_owned(), parse_url(url)?)),
            _ => Err(format!("{entry:?} is not of the form name=url")),
        })
        .collect::<Result<Vec<_>, String>>()?;
    if members.is_empty() {
        return Err("no members given".to_owned());
    }
    Ok(members)
}

/// Go's `strconv.ParseBool`.
pub(super) fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error".to_owned()),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, or `0x`/`0o`/`0b`/`0` prefixed,
/// underscores allowed only after a prefix.
pub(super) fn parse_go_uint(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.as_bytes() {
        [b'0', b'x' | b'X', ..] => (&s[2..], 16),
        [b'0', b'o' | b'O', ..] => (&s[2..], 8),
        [b'0', b'b' | b'B', ..] => (&s[2..], 2),
        [b'0', _, ..] => (&s[1..], 8),
        _ => (s, 10),
    };
    let digits = if radix == 10 {
        digits.to_owned()
    } else {
        digits.replace('_', "")
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err("parse error".to_owned());
    }
    u64::from_str_radix(&digits, radix).map_err(|err| match err.kind() {
        std::num::IntErrorKind::PosOverflow => "value out of range".to_owned(),
        _ => "parse error".to_owned(),
    })
}

pub(super) fn parse_go_usize(s: &str) -> Result<usize, String> {
    usize::try_from(parse_go_uint(s)?).map_err(|_| "value out of range".to_owned())
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub(super) fn parse_go_int(s: &str) -> Result<i64, String> {
    let (negative, magnitude) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let magnitude = i128::from(parse_go_uint(magnitude)?);
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| "value out of range".to_owned())
}

/// Splits `s` after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()))
}

/// Go's `time.ParseDuration`, minus negative durations: a sequence of decimal
/// numbers with optional fraction and a unit (`ns us µs ms s m h`), or `0`.
pub(super) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return if rest == "-0" {
            Ok(Duration::ZERO)
        } else {
            Err("negative durations are not allowed".to_owned())
        };
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let (int_part, after) = split_digits(rest);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        // 24 digits are finer than a nanosecond and keep `frac * unit_ns` within u128.
        let frac_digits = &frac_part[..frac_part.len().min(24)];
        let frac: u128 = if frac_digits.is_empty() {
            0
        } else {
            frac_digits.parse().map_err(|_| invalid())?
        };
        let frac_ns = frac * unit_ns / 10u128.pow(frac_digits.len() as u32);
        total_ns = int
            .checked_mul(unit_ns)
            .and_then(|ns| ns.checked_add(frac_ns))
            .and_then(|ns| ns.checked_add(total_ns))
            .ok_or_else(invalid)?;
        rest = after;
    }
    u64::try_from(total_ns)
        .map(Duration::from_nanos)
        .map_err(|_| invalid())
}

pub(super) fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    Ok(match s {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "dpanic" => LogLevel::DPanic,
        "panic" => LogLevel::Panic,
        "fatal" => LogLevel::Fatal,
        _ => {
            return Err(
                "valid values are debug, info, warn, error, dpanic, panic, fatal".to_owned(),
            )
        }
    })
}

/// `--log-outputs`: `default`/`stderr`/`stdout`; files and journald are not supported yet.
pub(super) fn parse_log_outputs(s: &str) -> Result<Vec<LogOutput>, String> {
    let mut outputs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let output = match part {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            _ => {
                return Err(format!(
                    "log output {part:?} is not supported yet (only default, stderr, stdout)"
                ))
            }
        };
        if !outputs.contains(&output) {
            outputs.push(output);
        }
    }
    if outputs.is_empty() {
        outputs.push(LogOutput::Stderr);
    }
    Ok(outputs)
}
