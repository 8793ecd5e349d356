//! What a run reports, and how it is rendered: an aligned text table, JSON or CSV.
//!
//! A [`StrategyReport`] is flat: its [`StrategyReport::fields`] (name, value) list is
//! the one source of the JSON keys, the CSV columns and the Python dict keys, in that
//! order. The scenario fields repeat in every report so each record stands alone.

use std::fmt::Write as _;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::cluster::Cluster;
use super::config::SimConfig;
use super::metrics::Summary;
use super::table::Column;
use crate::error::Result;

/// The scenario every strategy of a run shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Accelerators in the fleet.
    pub accelerators: u64,
    /// Sum of execution slots.
    pub total_slots: u64,
    /// Sum of router capacities (slots plus queues).
    pub total_capacity: u64,
    /// Poisson arrival rate, requests per simulated second.
    pub arrival_rate: f64,
    /// Offered load relative to the slots.
    pub load_factor: f64,
    /// Queue depth relative to the slots.
    pub queue_factor: f64,
    /// Pareto shape of the service times (mean 1 s).
    pub service_shape: f64,
    /// Arrivals per strategy.
    pub requests: u64,
    /// Share of the arrivals left out as warm-up.
    pub warmup: f64,
    /// Age of the load information decisions see, seconds.
    pub staleness: f64,
    /// Seed of every random stream.
    pub seed: u64,
}

impl Scenario {
    /// The scenario of `config` on `cluster`.
    pub fn new(config: &SimConfig, cluster: &Cluster) -> Self {
        Scenario {
            accelerators: cluster.len() as u64,
            total_slots: cluster.total_slots(),
            total_capacity: cluster.total_capacity(),
            arrival_rate: cluster.arrival_rate(config.load_factor),
            load_factor: config.load_factor,
            queue_factor: config.queue_factor,
            service_shape: config.service_shape,
            requests: config.requests,
            warmup: config.warmup,
            staleness: config.staleness,
            seed: config.seed,
        }
    }

    /// Validates `config` and describes its scenario (draws the fleet, runs nothing).
    pub fn from_config(config: &SimConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::new(config, &Cluster::generate(config)))
    }

    /// A few lines describing the scenario, each ending in a newline.
    pub fn header(&self) -> String {
        let loads = if self.staleness > 0.0 {
            format!(
                "refreshed from the true loads every {:.3} s (staleness)",
                self.staleness
            )
        } else {
            "fresh (staleness 0)".to_owned()
        };
        format!(
            "fleetroute simulation\n\
             \x20 fleet:     {} accelerators, {} slots, capacity {} (queue factor {:.2})\n\
             \x20 arrivals:  {} per strategy, Poisson at {:.1}/s (load factor {:.2})\n\
             \x20 service:   Pareto shape {:.2}, mean 1 s; cost 1 per request\n\
             \x20 loads:     {}\n\
             \x20 measured:  after a {:.0}% warm-up, seed {}\n",
            self.accelerators,
            self.total_slots,
            self.total_capacity,
            self.queue_factor,
            self.requests,
            self.arrival_rate,
            self.load_factor,
            self.service_shape,
            loads,
            self.warmup * 100.0,
            self.seed,
        )
    }
}

/// The outcome of one strategy on the scenario's arrivals.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyReport {
    /// Canonical strategy name.
    pub strategy: String,
    /// The measured statistics.
    pub summary: Summary,
    /// Wall-clock seconds the strategy's run took.
    pub wall_seconds: f64,
    /// Arrivals routed per wall-clock second (the simulation's own speed).
    pub decisions_per_second: f64,
    /// The shared scenario.
    pub scenario: Scenario,
}

/// One field value of a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// A name.
    Text(&'a str),
    /// A count.
    Int(u64),
    /// A measurement.
    Float(f64),
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            FieldValue::Text(s) => serializer.serialize_str(s),
            FieldValue::Int(i) => serializer.serialize_u64(i),
            FieldValue::Float(f) => serializer.serialize_f64(f),
        }
    }
}

impl std::fmt::Display for FieldValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldValue::Text(s) => f.write_str(s),
            FieldValue::Int(i) => write!(f, "{i}"),
            FieldValue::Float(x) => write!(f, "{x}"),
        }
    }
}

impl StrategyReport {
    /// Rejections as a percentage of the measured arrivals.
    pub fn rejected_pct(&self) -> f64 {
        let s = &self.summary;
        if s.measured == 0 {
            0.0
        } else {
            100.0 * s.rejected as f64 / s.measured as f64
        }
    }

    /// Every field, in output order.
    pub fn fields(&self) -> Vec<(&'static str, FieldValue<'_>)> {
        use FieldValue::{Float, Int, Text};
        let s = &self.summary;
        let c = &self.scenario;
        vec![
            ("strategy", Text(&self.strategy)),
            ("throughput", Float(s.throughput)),
            ("mean_time_in_system", Float(s.mean_time_in_system)),
            ("p50_time_in_system", Float(s.p50_time_in_system)),
            ("p99_time_in_system", Float(s.p99_time_in_system)),
            ("mean_wait", Float(s.mean_wait)),
            ("measured", Int(s.measured)),
            ("completed", Int(s.completed)),
            ("rejected", Int(s.rejected)),
            ("rejected_pct", Float(self.rejected_pct())),
            ("max_over_mean", Float(s.max_over_mean)),
            ("load_cv", Float(s.load_cv)),
            ("balance_samples", Int(s.balance_samples)),
            ("mean_in_system", Float(s.mean_in_system)),
            ("window_seconds", Float(s.window_seconds)),
            ("wall_seconds", Float(self.wall_seconds)),
            ("decisions_per_second", Float(self.decisions_per_second)),
            ("accelerators", Int(c.accelerators)),
            ("total_slots", Int(c.total_slots)),
            ("total_capacity", Int(c.total_capacity)),
            ("arrival_rate", Float(c.arrival_rate)),
            ("load_factor", Float(c.load_factor)),
            ("queue_factor", Float(c.queue_factor)),
            ("service_shape", Float(c.service_shape)),
            ("requests", Int(c.requests)),
            ("warmup", Float(c.warmup)),
            ("staleness", Float(c.staleness)),
            ("seed", Int(c.seed)),
        ]
    }
}

impl Serialize for StrategyReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let fields = self.fields();
        let mut state = serializer.serialize_struct("StrategyReport", fields.len())?;
        for (name, value) in fields {
            state.serialize_field(name, &value)?;
        }
        state.end()
    }
}

/// How reports are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text table ([`render_table`]).
    Table,
    /// Pretty JSON array of report objects.
    Json,
    /// CSV with one header row and one row per report.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = crate::RouterError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(crate::RouterError::UnknownName {
                kind: "format",
                name: s.to_owned(),
                expected: &["table", "json", "csv"],
            }),
        }
    }
}

/// Renders `reports` in `format` (ends with a newline).
pub fn render(reports: &[StrategyReport], format: Format) -> String {
    match format {
        Format::Table => render_table(reports),
        Format::Json => render_json(reports),
        Format::Csv => render_csv(reports),
    }
}

/// The table's columns: title and cell. The first column is left-aligned, the others
/// right-aligned; the Python CLI prints the same layout.
const COLUMNS: &[Column<StrategyReport>] = &[
    ("strategy", |r| r.strategy.clone()),
    ("done/s", |r| format!("{:.1}", r.summary.throughput)),
    ("mean s", |r| {
        format!("{:.3}", r.summary.mean_time_in_system)
    }),
    ("p50 s", |r| format!("{:.3}", r.summary.p50_time_in_system)),
    ("p99 s", |r| format!("{:.3}", r.summary.p99_time_in_system)),
    ("wait s", |r| format!("{:.3}", r.summary.mean_wait)),
    ("rejected", |r| r.summary.rejected.to_string()),
    ("rej %", |r| format!("{:.2}", r.rejected_pct())),
    ("max/mean", |r| format!("{:.3}", r.summary.max_over_mean)),
    ("load CV", |r| format!("{:.3}", r.summary.load_cv)),
    ("decisions/s", |r| format!("{:.0}", r.decisions_per_second)),
];

/// An aligned text table: a title row, a rule, one row per strategy.
pub fn render_table(reports: &[StrategyReport]) -> String {
    crate::sim::table::render_columns(reports, COLUMNS)
}

/// A pretty JSON array with one object per report.
pub fn render_json(reports: &[StrategyReport]) -> String {
    let mut text = serde_json::to_string_pretty(reports).expect("reports serialise to JSON");
    text.push('\n');
    text
}

fn csv_cell(value: &FieldValue<'_>) -> String {
    let text = value.to_string();
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// CSV: a header row of field names, then one row per report.
pub fn render_csv(reports: &[StrategyReport]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = match reports.first() {
        Some(r) => r.fields().iter().map(|(n, _)| *n).collect(),
        None => return out,
    };
    let _ = writeln!(out, "{}", names.join(","));
    for r in reports {
        let row: Vec<String> = r.fields().iter().map(|(_, v)| csv_cell(v)).collect();
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, p99: f64) -> StrategyReport {
        let config = SimConfig::default();
        let cluster = Cluster::from_slots(&config, vec![4, 8, 16]);
        StrategyReport {
            strategy: name.to_owned(),
            summary: Summary {
                measured: 1000,
                completed: 990,
                rejected: 10,
                throughput: 24.5,
                p99_time_in_system: p99,
                ..Summary::default()
            },
            wall_seconds: 0.5,
            decisions_per_second: 2000.0,
            scenario: Scenario::new(&config, &cluster),
        }
    }

    #[test]
    fn table_is_aligned() {
        let table = render_table(&[sample("p2c", 4.25), sample("least_connections", 12.5)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("strategy           done/s"), "{table}");
        assert!(lines[1].starts_with("-----------------  ------"), "{table}");
        assert!(lines[2].starts_with("p2c                  24.5"), "{table}");
        // Right-aligned columns end at the same offsets on every line.
        let ends = |l: &str| l.match_indices("  ").count();
        assert!(lines.iter().all(|l| l.len() == lines[1].len()), "{table}");
        assert!(ends(lines[2]) > 0);
        assert!(lines[3].contains("12.500") && lines[3].contains(" 1.00 "));
    }

    #[test]
    fn json_and_csv_share_the_field_list() {
        let reports = [sample("p2c", 4.25), sample("random", 5.0)];
        let json: serde_json::Value = serde_json::from_str(&render_json(&reports)).unwrap();
        let first = json[0].as_object().unwrap();
        let names: Vec<&str> = reports[0].fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(first.len(), names.len());
        assert!(names.iter().all(|n| first.contains_key(*n)));
        assert_eq!(first["strategy"], "p2c");
        assert_eq!(first["rejected"], 10);
        assert_eq!(first["rejected_pct"], 1.0);
        let csv = render_csv(&reports);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].split(',').collect::<Vec<_>>(), names);
        assert!(rows[2].starts_with("random,24.5,"));
        assert_eq!(render_csv(&[]), "");
    }

    #[test]
    fn header_describes_the_scenario() {
        let header = sample("p2c", 1.0).scenario.header();
        assert!(
            header.contains("3 accelerators, 28 slots, capacity 56"),
            "{header}"
        );
        assert!(
            header.contains("Poisson at 25.2/s (load factor 0.90)"),
            "{header}"
        );
        assert!(header.contains("fresh (staleness 0)"), "{header}");
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert!("xml"
            .parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("xml"));
    }
}
