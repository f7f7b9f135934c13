//! etcdctl's txn input language: comparisons like `mod("k") > "0"` and request lines like
//! `put k v --lease=1`, split shell-style (double-quoted words may contain spaces).
//!
//! Invariant: messages for malformed input are etcdctl's (`malformed comparison: ...`,
//! `invalid txn request: ...`).

use clap::Parser;
use oxcd_client::pb::{compare, Compare, RequestOp};

use crate::cli::{DelArgs, GetArgs, PutArgs};

/// Split a line into words; `"..."` is one word with Go escapes resolved.
pub fn argify(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some(o) => word.push(o),
                        None => return Err(format!("invalid quoted word in {line:?}")),
                    },
                    o => word.push(o),
                }
            }
            if !closed {
                return Err(format!("unterminated quote in {line:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

/// Read one `%q` token at the start of `s`; returns it and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let rest = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut it = rest.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Some((out, &rest[i + 1..])),
            '\\' => match it.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                o => out.push(o),
            },
            o => out.push(o),
        }
    }
    None
}

/// Parse one comparison line.
pub fn parse_compare(line: &str) -> Result<Compare, String> {
    let malformed = || format!("malformed comparison: {line}");
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    let (key, rest) = quoted(rest).ok_or_else(malformed)?;
    let rest = rest.strip_prefix(')').ok_or_else(malformed)?.trim_start();
    let (op, rest) = rest.split_once(' ').ok_or_else(malformed)?;
    let (val, _) = quoted(rest).ok_or_else(malformed)?;
    let result = match op {
        "=" | "==" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        ">" => compare::CompareResult::Greater,
        "<" => compare::CompareResult::Less,
        _ => return Err(format!("malformed comparison: {line} (unknown op {op})")),
    };
    let int = |radix: u32| i64::from_str_radix(&val, radix).map_err(|e| format!("{e}"));
    let (t, u) = match target.trim() {
        "ver" | "version" => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(int(10)?),
        ),
        "c" | "create" => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(int(10)?),
        ),
        "m" | "mod" => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(int(10)?),
        ),
        "val" | "value" => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(val.clone().into_bytes()),
        ),
        "lease" => (
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(int(16)?),
        ),
        other => {
            return Err(format!(
                "malformed comparison: {line} (unknown target {other})"
            ))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: t as i32,
        key: key.into_bytes(),
        target_union: Some(u),
        range_end: Vec::new(),
    })
}

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
enum TxnOp {
    Get(GetArgs),
    Put(PutArgs),
    Del(DelArgs),
}

/// Parse one request line (`get ...`, `put ...`, `del ...`).
pub fn parse_request(line: &str) -> Result<RequestOp, String> {
    let words = argify(line)?;
    let invalid = || format!("invalid txn request: {line}");
    let op = TxnOp::try_parse_from(&words).map_err(|_| invalid())?;
    match op {
        TxnOp::Get(a) => crate::cmd::kv::get_op(&a).map(|(k, o)| oxcd_client::Op::get(k, &o)),
        TxnOp::Put(a) => {
            crate::cmd::kv::put_op(&a, false).map(|(k, v, o)| oxcd_client::Op::put(k, v, &o))
        }
        TxnOp::Del(a) => crate::cmd::kv::del_op(&a).map(|(k, o)| oxcd_client::Op::delete(k, &o)),
    }
    .map_err(|e| match e {
        crate::CtlError::Exit { msg, .. } => msg,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_parse_like_etcdctl() {
        let c = parse_compare(r#"mod("k1") > "0""#).unwrap();
        assert_eq!(c.key, b"k1");
        assert_eq!(c.result, compare::CompareResult::Greater as i32);
        let c = parse_compare(r#"value("a b") = "x y""#).unwrap();
        assert_eq!(
            c.target_union,
            Some(compare::TargetUnion::Value(b"x y".to_vec()))
        );
        assert!(parse_compare("mod(k1) > 0")
            .unwrap_err()
            .starts_with("malformed comparison"));
        assert!(parse_compare(r#"foo("k") = "1""#)
            .unwrap_err()
            .contains("unknown target"));
    }

    #[test]
    fn requests_parse_with_flags() {
        assert_eq!(argify(r#"put "a b" c"#).unwrap(), ["put", "a b", "c"]);
        assert!(parse_request("get k --prefix").is_ok());
        assert!(parse_request("put k v --prev-kv").is_ok());
        assert!(parse_request("frob k")
            .unwrap_err()
            .starts_with("invalid txn request"));
    }
}
