//! Prometheus text exposition read with a real parser (the `prometheus-parse` crate):
//! counter, gauge and untyped samples by metric name, labelled samples summed.

use std::collections::HashMap;

/// The samples of a `/metrics` body; panics if it does not parse or holds none.
pub fn scrape_values(text: &str) -> HashMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text exposition");
    assert!(!scrape.samples.is_empty(), "no samples in {text:?}");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        *out.entry(s.metric).or_insert(0.0) += v;
    }
    out
}
