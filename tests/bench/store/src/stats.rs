//! Latency samples, their summary, and the result table.

use std::time::Duration;

/// What one measurement produced.
pub(crate) struct Stats {
    pub(crate) ops: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
}

impl Stats {
    pub(crate) fn new(elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Stats {
            ops: latencies.len(),
            elapsed,
            latencies,
        }
    }

    pub(crate) fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }
}

/// One line of the table.
pub(crate) struct Row {
    pub(crate) operation: &'static str,
    pub(crate) callers: usize,
    pub(crate) kite: Stats,
    pub(crate) etcd: Option<Stats>,
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// A Markdown table of all rows.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| operation | callers | kite ops/s | kite p50 | kite p99 | etcd ops/s | etcd p50 | etcd p99 | kite/etcd ops/s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let kite = &row.kite;
        let (etcd_ops, etcd_p50, etcd_p99, ratio) = match &row.etcd {
            Some(etcd) => (
                format!("{:.0}", etcd.ops_per_second()),
                ms(etcd.percentile(0.5)),
                ms(etcd.percentile(0.99)),
                format!(
                    "{:.2}x",
                    kite.ops_per_second() / etcd.ops_per_second().max(f64::EPSILON)
                ),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {etcd_ops} | {etcd_p50} | {etcd_p99} | {ratio} |\n",
            row.operation,
            row.callers,
            kite.ops_per_second(),
            ms(kite.percentile(0.5)),
            ms(kite.percentile(0.99)),
        ));
    }
    out
}
