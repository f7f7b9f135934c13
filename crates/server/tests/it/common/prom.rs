//! Prometheus text exposition read with a real parser (the `prometheus-parse` crate):
//! counter, gauge and untyped samples by metric name, labelled samples summed; a histogram
//! as `<name>_count` (its +Inf bucket).

use std::collections::HashMap;

/// The samples of a `/metrics` body; panics if it does not parse or holds none.
pub fn scrape_values(text: &str) -> HashMap<String, f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text exposition");
    assert!(!scrape.samples.is_empty(), "no samples in {text:?}");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let (name, v) = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => (s.metric, v),
            prometheus_parse::Value::Histogram(buckets) => (
                format!("{}_count", s.metric),
                buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            ),
            _ => continue,
        };
        *out.entry(name).or_insert(0.0) += v;
    }
    out
}
