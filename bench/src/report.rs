//! The gateway benchmark's results as markdown: one row per scenario and
//! metric (direct, through and added time), and the targets they are held to.

use super::gateway::{MAX_CONNECTIONS, Scenario};
use super::oha::Figures;
use super::usage::Usage;

/// Which time a row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Until the last byte of the answer.
    Whole,
    /// Until the first body byte (streams).
    FirstByte,
}

/// One line of the table.
pub struct Row {
    pub scenario: Scenario,
    pub metric: Metric,
    pub direct: Figures,
    pub through: Figures,
    /// The server during the measured run through it.
    pub usage: Usage,
}

const HEADER: &str = "\
| Scenario | Direct p50 / p90 / p99 (ms) | Through p50 / p90 / p99 (ms) | Added p50 / p90 / p99 (ms) \
| req/s direct / through | Errors direct / through | Server max RSS (MB) | Server CPU (% of a core) |
|---|---|---|---|---|---|---|---|";

/// The results table.
pub fn table(rows: &[Row]) -> String {
    let mut out = HEADER.to_owned();
    for row in rows {
        out.push_str(&format!(
            "\n| {} | {} | {} | {} | {} / {} | {} / {} | {:.1} | {:.0} |",
            label(&row.scenario, row.metric),
            times(row.direct.ms, false),
            times(row.through.ms, false),
            times(row.through.added_over(&row.direct), true),
            thousands(row.direct.rps),
            thousands(row.through.rps),
            row.direct.errors,
            row.through.errors,
            row.usage.max_rss_mb,
            row.usage.cpu_percent,
        ));
    }
    out
}

/// The targets, what was measured against each, and whether it was met.
pub fn targets(rows: &[Row]) -> String {
    let find = |stream, rate, metric| {
        rows.iter().find(|r| r.scenario == Scenario { stream, rate, reported: true } && r.metric == metric)
    };
    let added_p99 = |row: Option<&Row>| row.map_or(f64::NAN, |r| r.through.added_over(&r.direct)[2]);
    let mut out = "| Target | Measured | Met |\n|---|---|---|".to_owned();
    for (name, stream) in [("non-stream", false), ("stream, whole answer", true)] {
        let added = added_p99(find(stream, Some(1_000), Metric::Whole));
        let target = format!("Added p99 at 1,000 req/s ≤ 1 ms ({name})");
        out.push_str(&target_line(&target, &format!("{added:+.3} ms"), added <= 1.0));
    }
    for (name, stream) in [("non-stream", false), ("stream, whole answer", true)] {
        let silent = Scenario { stream, rate: Some(1_000), reported: false };
        let row = rows.iter().find(|r| r.scenario == silent && r.metric == Metric::Whole);
        let added = added_p99(row);
        let target = format!("Added p99 at 1,000 req/s ≤ 1 ms ({name}, usage counted by the gateway)");
        out.push_str(&target_line(&target, &format!("{added:+.3} ms"), added <= 1.0));
    }
    let max = find(false, None, Metric::Whole).map(|r| r.through);
    let (rps, errors) = max.map_or((f64::NAN, u64::MAX), |f| (f.rps, f.errors));
    out.push_str(&target_line(
        "Max non-stream throughput ≥ 10,000 req/s, no errors",
        &format!("{} req/s, {errors} errors", thousands(rps)),
        rps >= 10_000.0 && errors == 0,
    ));
    let added = added_p99(find(true, Some(1_000), Metric::FirstByte));
    out.push_str(&target_line(
        "Added p99 to the first stream byte ≤ 1 ms (at 1,000 req/s)",
        &format!("{added:+.3} ms"),
        added <= 1.0,
    ));
    let rss = rows.iter().map(|r| r.usage.max_rss_mb).fold(0.0, f64::max);
    out.push_str(&target_line(
        "Server RSS ≤ 100 MB under load",
        &format!("{rss:.1} MB at most"),
        rss <= 100.0,
    ));
    out
}

pub fn target_line(target: &str, measured: &str, met: bool) -> String {
    format!("\n| {target} | {measured} | {} |", if met { "yes" } else { "**no**" })
}

pub fn label(scenario: &Scenario, metric: Metric) -> String {
    let kind = match (scenario.stream, metric) {
        (false, _) => "non-stream",
        (true, Metric::Whole) => "stream, whole answer",
        (true, Metric::FirstByte) => "stream, first byte",
    };
    let kind = if scenario.reported { kind.to_owned() } else { format!("{kind}, no usage upstream") };
    match scenario.rate {
        Some(rate) => format!("{kind} at {} req/s", thousands(f64::from(rate))),
        None => format!("{kind} at max, {MAX_CONNECTIONS} connections"),
    }
}

/// One run in a line, for progress output.
pub fn brief(figures: &Figures) -> String {
    format!(
        "p50/p90/p99 {} ms, {} req/s, {} errors",
        times(figures.ms, false),
        thousands(figures.rps),
        figures.errors
    )
}

/// p50 / p90 / p99 in milliseconds; `signed` for differences.
pub fn times(ms: [f64; 3], signed: bool) -> String {
    let [p50, p90, p99] = ms.map(|t| if signed { format!("{t:+.3}") } else { format!("{t:.3}") });
    format!("{p50} / {p90} / {p99}")
}

/// A rate rounded to a whole number, with thousands separators.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < -0.5 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: Scenario, metric: Metric, direct: [f64; 3], through: [f64; 3], rps: f64) -> Row {
        let direct = Figures { ms: direct, rps, errors: 0 };
        Row {
            scenario,
            metric,
            direct,
            through: Figures { ms: through, ..direct },
            usage: Usage { max_rss_mb: 42.0, cpu_percent: 80.0 },
        }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(12_345.6), "12,346");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(f64::NAN), "n/a");
    }

    #[test]
    fn rows_show_added_time() {
        let scenario = Scenario { stream: true, rate: Some(200), reported: true };
        let rows = [row(scenario, Metric::FirstByte, [1.0, 2.0, 3.0], [1.25, 2.5, 3.0], 200.0)];
        let table = table(&rows);
        assert!(table.contains("| stream, first byte at 200 req/s | 1.000 / 2.000 / 3.000 |"), "{table}");
        assert!(table.contains("| +0.250 / +0.500 / +0.000 | 200 / 200 | 0 / 0 | 42.0 | 80 |"), "{table}");
    }

    #[test]
    fn targets_are_checked() {
        let at = |stream, rate| Scenario { stream, rate, reported: true };
        let rows = [
            row(at(false, Some(1_000)), Metric::Whole, [1.0; 3], [1.5; 3], 1_000.0),
            row(at(true, Some(1_000)), Metric::Whole, [1.0; 3], [2.5; 3], 1_000.0),
            row(at(true, Some(1_000)), Metric::FirstByte, [1.0; 3], [1.2; 3], 1_000.0),
            row(at(false, None), Metric::Whole, [1.0; 3], [1.2; 3], 12_000.0),
        ];
        let targets = targets(&rows);
        assert!(targets.contains("(non-stream) | +0.500 ms | yes |"), "{targets}");
        assert!(targets.contains("(stream, whole answer) | +1.500 ms | **no** |"), "{targets}");
        assert!(targets.contains("| 12,000 req/s, 0 errors | yes |"), "{targets}");
        assert!(targets.contains("(at 1,000 req/s) | +0.200 ms | yes |"), "{targets}");
        assert!(targets.contains("| 42.0 MB at most | yes |"), "{targets}");
    }
}
