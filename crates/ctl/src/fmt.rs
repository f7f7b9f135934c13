//! Text helpers that reproduce Go's formatting as etcdctl uses it: `%q` quoting, `%x`
//! ids, go-humanize byte sizes, `time.Duration` strings and tablewriter tables.
//!
//! Invariant: pure functions of their input (no I/O), unit-tested against outputs of
//! etcdctl 3.4.23.

use std::time::Duration;

/// Go's `%q` of a string made from arbitrary bytes.
pub fn quote(b: &[u8]) -> String {
    let mut out = String::from("\"");
    let s = String::from_utf8_lossy(b);
    if s.as_bytes() != b {
        // Invalid UTF-8: Go escapes each bad byte as \x..; keep it simple and exact for
        // ASCII by escaping every non-ASCII byte.
        for &c in b {
            push_byte(&mut out, c);
        }
    } else {
        for ch in s.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
    out
}

fn push_byte(out: &mut String, c: u8) {
    match c {
        b'"' => out.push_str("\\\""),
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        0x20..=0x7e => out.push(c as char),
        _ => out.push_str(&format!("\\x{c:02x}")),
    }
}

/// etcdctl's `--hex` form: `\x` before every byte's two hex digits.
pub fn hex_prefixed(b: &[u8]) -> String {
    b.iter().map(|c| format!("\\x{c:02x}")).collect()
}

/// go-humanize's `Bytes` (SI units).
pub fn humanize_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let e = ((s as f64).ln() / 1000f64.ln()).floor();
    let suffix = SIZES[e as usize];
    let val = ((s as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let trim = |v: f64, prec: usize| {
        let s = format!("{v:.prec$}");
        let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
        s
    };
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", trim(ns as f64 / 1e3, 3))
    } else if ns < 1_000_000_000 {
        format!("{}ms", trim(ns as f64 / 1e6, 6))
    } else {
        let secs = d.as_secs_f64();
        let h = (secs / 3600.0).floor();
        let m = ((secs - h * 3600.0) / 60.0).floor();
        let s = secs - h * 3600.0 - m * 60.0;
        let mut out = String::new();
        if h > 0.0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0.0 || m > 0.0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{}s", trim(s, 9)));
        out
    }
}

/// Parse a Go duration (`2s`, `500ms`, `1m30s`, `1.5h`).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let v: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// A table as etcdctl draws it (tablewriter, right-aligned cells, centred headers).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = {
        let mut s = String::from("+");
        for wi in &w {
            s.push_str(&"-".repeat(wi + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = line.clone();
    out.push('|');
    for (i, h) in headers.iter().enumerate() {
        let gap = w[i] - h.chars().count();
        let left = gap / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            h,
            " ".repeat(gap - left)
        ));
    }
    out.push('\n');
    out.push_str(&line);
    for r in rows {
        out.push('|');
        for (i, wi) in w.iter().enumerate() {
            let c = r.get(i).map(String::as_str).unwrap_or("");
            out.push_str(&format!(" {}{} |", " ".repeat(wi - c.chars().count()), c));
        }
        out.push('\n');
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(go_duration(Duration::from_nanos(1_148_744)), "1.148744ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert!(parse_go_duration("5x").is_err());
        assert_eq!(quote(b"a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(hex_prefixed(b"k1"), "\\x6b\\x31");
    }

    #[test]
    fn tables_match_etcdctl() {
        let t = table(
            &["ID", "STATUS", "NAME", "IS LEARNER"],
            &[vec![
                "2e1259d415f2a040".into(),
                "started".into(),
                "t".into(),
                "false".into(),
            ]],
        );
        assert_eq!(
            t,
            "+------------------+---------+------+------------+\n\
             |        ID        | STATUS  | NAME | IS LEARNER |\n\
             +------------------+---------+------+------------+\n\
             | 2e1259d415f2a040 | started |    t |      false |\n\
             +------------------+---------+------+------------+\n"
        );
    }
}
