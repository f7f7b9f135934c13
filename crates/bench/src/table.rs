//! `table`: the side-by-side comparison printed by `bench/compare.sh`.
//!
//! Input is JSON lines, one per (server, workload) fact:
//! `{"server": "etcd", "workload": "put", "report": {...}, "metrics": {"cpu_s": 1.2}, "error": "..."}`
//! where `report` (an `oxcd-bench --json` report), `metrics` (named numbers) and `error`
//! are each optional; several lines for the same pair are merged.
//!
//! Invariants:
//! - Workloads and metrics appear in the order they first appear in the input; servers in
//!   `--servers` order (first = baseline).
//! - A cell with no data prints `-`; the ratio column is `second / first` and only printed
//!   when both are numbers and the baseline is non-zero.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// `table` options.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TableArgs {
    /// JSON-lines file written by compare.sh.
    pub input: PathBuf,
    /// Servers to compare, baseline first.
    #[arg(long, value_delimiter = ',', default_value = "etcd,oxcd")]
    pub servers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Line {
    server: String,
    workload: String,
    #[serde(default)]
    report: Option<Report>,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    error: Option<String>,
}

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Num(f64),
    Text(String),
}

impl Cell {
    fn show(&self) -> String {
        match self {
            Cell::Num(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            Cell::Num(v) if v.abs() >= 100.0 => format!("{v:.1}"),
            Cell::Num(v) => format!("{v:.3}"),
            Cell::Text(t) => t.clone(),
        }
    }
}

/// Rows of one workload: metric name -> server -> cell, metrics in insertion order.
#[derive(Debug, Default)]
struct Rows {
    order: Vec<String>,
    cells: BTreeMap<String, BTreeMap<String, Cell>>,
}

impl Rows {
    fn set(&mut self, metric: &str, server: &str, cell: Cell) {
        if !self.cells.contains_key(metric) {
            self.order.push(metric.to_string());
        }
        self.cells
            .entry(metric.to_string())
            .or_default()
            .insert(server.to_string(), cell);
    }
}

/// Extras worth a row of their own, with their labels.
const EXTRAS: &[(&str, &str)] = &[
    ("retries_per_op", "retries/op"),
    ("put_ops_per_sec", "puts/s"),
    ("missing_events", "missing events"),
    ("kvs_per_read", "kvs/read"),
];

fn add_report(rows: &mut Rows, server: &str, r: &Report) {
    rows.set("ops/s", server, Cell::Num(r.ops_per_sec));
    // No successful op, no latency: a dash, not a misleading 0.
    let lat = |v: f64| {
        if r.ops > 0 {
            Cell::Num(v)
        } else {
            Cell::Text("-".into())
        }
    };
    rows.set("p50 ms", server, lat(r.latency_ms.p50));
    rows.set("p99 ms", server, lat(r.latency_ms.p99));
    rows.set("p99.9 ms", server, lat(r.latency_ms.p999));
    rows.set(
        "errors",
        server,
        Cell::Num(r.errors.values().sum::<u64>() as f64),
    );
    for (key, label) in EXTRAS {
        if let Some(v) = r.extra.get(*key).and_then(|v| v.as_f64()) {
            rows.set(label, server, Cell::Num(v));
        }
    }
}

/// Build the table text from JSON lines.
fn render(input: &str, servers: &[String]) -> Result<String, String> {
    let mut order: Vec<String> = Vec::new();
    let mut table: BTreeMap<String, Rows> = BTreeMap::new();
    let mut ops: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (n, raw) in input.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(raw).map_err(|e| format!("line {}: {e}", n + 1))?;
        if !table.contains_key(&line.workload) {
            order.push(line.workload.clone());
        }
        let rows = table.entry(line.workload.clone()).or_default();
        if let Some(r) = &line.report {
            add_report(rows, &line.server, r);
            ops.insert((line.workload.clone(), line.server.clone()), r.ops);
        }
        for (name, v) in &line.metrics {
            rows.set(name, &line.server, Cell::Num(*v));
            let done = ops.get(&(line.workload.clone(), line.server.clone()));
            if let (true, Some(&done)) = (name == "server CPU s", done) {
                if done > 0 {
                    rows.set("CPU us/op", &line.server, Cell::Num(v * 1e6 / done as f64));
                }
            }
        }
        if let Some(e) = &line.error {
            let e = e
                .trim_start_matches("oxcd-bench: ")
                .replace("grpc error ", "");
            let short: String = e.chars().take(44).collect();
            rows.set("error", &line.server, Cell::Text(short));
        }
    }
    let mut out: Vec<[String; 5]> = Vec::new();
    let (base, other) = (
        servers.first().cloned().unwrap_or_default(),
        servers.get(1).cloned().unwrap_or_default(),
    );
    out.push([
        "workload".into(),
        "metric".into(),
        base.clone(),
        other.clone(),
        format!("{other}/{base}"),
    ]);
    for w in &order {
        let rows = &table[w];
        for m in &rows.order {
            let cells = &rows.cells[m];
            let (a, b) = (cells.get(&base), cells.get(&other));
            let show = |c: Option<&Cell>| c.map_or("-".to_string(), Cell::show);
            let ratio = match (a, b) {
                (Some(Cell::Num(a)), Some(Cell::Num(b))) if *a != 0.0 => format!("{:.2}", b / a),
                _ => "-".to_string(),
            };
            out.push([w.clone(), m.clone(), show(a), show(b), ratio]);
        }
    }
    let mut widths = [0usize; 5];
    for row in &out {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut text = String::new();
    for (i, row) in out.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(j, c)| {
                if j < 2 {
                    format!("{c:<w$}", w = widths[j])
                } else {
                    format!("{c:>w$}", w = widths[j])
                }
            })
            .collect();
        text.push_str(cells.join(" | ").trim_end());
        text.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            text.push_str(&rule.join("-|-"));
            text.push('\n');
        }
    }
    Ok(text)
}

/// Print the table for `a.input`.
pub fn print(a: &TableArgs) -> Result<(), String> {
    let input = std::fs::read_to_string(&a.input)
        .map_err(|e| format!("reading {}: {e}", a.input.display()))?;
    print!("{}", render(&input, &a.servers)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{record_duration, Recorder};
    use std::time::Duration;

    fn report(ops_per_ms: u64) -> String {
        let mut rec = Recorder::default();
        for _ in 0..ops_per_ms * 1000 {
            record_duration(&mut rec.hist, Duration::from_millis(2));
        }
        Report::new("put", 1000, &rec, Duration::from_secs(1)).to_json()
    }

    #[test]
    fn renders_side_by_side_with_ratio() {
        let input = format!(
            "{{\"server\":\"etcd\",\"workload\":\"put\",\"report\":{}}}\n\
             {{\"server\":\"oxcd\",\"workload\":\"put\",\"report\":{}}}\n\
             {{\"server\":\"etcd\",\"workload\":\"put\",\"metrics\":{{\"server CPU s\":2.0}}}}\n\
             {{\"server\":\"oxcd\",\"workload\":\"server\",\"error\":\"not built\"}}\n",
            report(1),
            report(2)
        );
        let t = render(&input, &["etcd".into(), "oxcd".into()]).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("workload | metric"), "{t}");
        let ops = lines.iter().find(|l| l.contains("ops/s")).unwrap();
        assert!(ops.ends_with("2.00"), "{ops}");
        let cpu = lines.iter().find(|l| l.contains("CPU us/op")).unwrap();
        assert!(
            cpu.contains("2000") && cpu.trim_end().ends_with('-'),
            "{cpu}"
        );
        assert!(t.contains("not built"));
        assert!(render("{bad", &[]).is_err());
    }
}
