//! `fleetroute`: runs the discrete-event simulation (see `fleetroute::sim`) and prints
//! one row per strategy.
//!
//! ```text
//! cargo run --release -- --accelerators 10000 --load-factor 0.9 --requests 1000000 \
//!     --staleness 0.0 --seed 42 --strategies p2c,least_connections --format table
//! ```
//!
//! The table format starts with a header describing the scenario; JSON and CSV carry
//! the scenario in every record instead. `--workload prefix` runs the shared-prefix
//! benchmark instead (`fleetroute::sim::prefix`: `--replicas`, `--tenants`,
//! `--requests`, `--seed`, `--strategies`, `--format table|json`). A progress bar goes to stderr unless
//! `--quiet` is given or stderr is not a terminal. Invalid options exit with status 2
//! and the core's message.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use fleetroute::sim::config::DEFAULT_STRATEGIES;
use fleetroute::sim::{self, Format, Scenario, SimConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Fleet,
    Prefix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
    Csv,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Table => Format::Table,
            OutputFormat::Json => Format::Json,
            OutputFormat::Csv => Format::Csv,
        }
    }
}

/// Simulates an inference fleet behind fleetroute's router and compares strategies
/// on the same Poisson arrivals (heavy-tailed service, mean 1 s).
#[derive(Debug, Parser)]
#[command(name = "fleetroute", version, about)]
struct Cli {
    /// Which simulation: the accelerator fleet, or the shared-prefix LLM benchmark.
    #[arg(long, value_enum, default_value_t = Workload::Fleet)]
    workload: Workload,
    /// Prefix workload: model-server replicas (8 to 64).
    #[arg(long, default_value_t = sim::prefix::config::DEFAULT_REPLICAS)]
    replicas: usize,
    /// Prefix workload: tenants, each with its own system prompt.
    #[arg(long, default_value_t = sim::prefix::config::DEFAULT_TENANTS)]
    tenants: usize,
    /// Accelerators in the fleet (4, 8 or 16 slots each, w.p. 0.5/0.3/0.2).
    #[arg(long, default_value_t = sim::config::DEFAULT_ACCELERATORS)]
    accelerators: usize,
    /// Offered load as a share of the fleet's slots (arrival rate = this x slots / 1 s).
    #[arg(long, default_value_t = 0.9)]
    load_factor: f64,
    /// Arrivals simulated per strategy [default: 1000000; prefix workload: 50000].
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds of simulated time between refreshes of the load view decisions see.
    #[arg(long, default_value_t = 0.0)]
    staleness: f64,
    /// Seed of the fleet, the workload and the strategies' randomness.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Strategies to compare, comma-separated [default: every fleet strategy; prefix
    /// workload: random, round_robin, least_connections, p2c, consistent_hash, cache_aware].
    #[arg(long, value_delimiter = ',')]
    strategies: Option<Vec<String>>,
    /// Queue depth per accelerator relative to its slots (capacity = slots x (1 + this)).
    #[arg(long, default_value_t = 1.0)]
    queue_factor: f64,
    /// Pareto shape of the service times (> 1; mean stays 1 s).
    #[arg(long, default_value_t = sim::config::DEFAULT_SERVICE_SHAPE)]
    service_shape: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl Cli {
    fn config(&self) -> SimConfig {
        SimConfig {
            accelerators: self.accelerators,
            load_factor: self.load_factor,
            requests: self.requests.unwrap_or(sim::config::DEFAULT_REQUESTS),
            staleness: self.staleness,
            seed: self.seed,
            strategies: (self.strategies.clone())
                .unwrap_or_else(|| DEFAULT_STRATEGIES.iter().map(|s| s.to_string()).collect()),
            queue_factor: self.queue_factor,
            service_shape: self.service_shape,
            ..SimConfig::default()
        }
    }
}

fn progress_bar(config: &SimConfig, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = config.requests * config.strategies.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:<20} [{wide_bar}] {percent:>3}% {human_pos}/{human_len} eta {eta}",
        )
        .expect("progress template is valid")
        .progress_chars("=> "),
    );
    bar
}

/// `--workload prefix`: the shared-prefix benchmark, printed as a table or JSON.
fn run_prefix(cli: &Cli) -> ExitCode {
    use sim::prefix::{self as bench, PrefixScenario, PrefixSimConfig};
    let defaults = PrefixSimConfig::default();
    let config = PrefixSimConfig {
        replicas: cli.replicas,
        tenants: cli.tenants,
        requests: cli.requests.unwrap_or(defaults.requests),
        seed: cli.seed,
        strategies: cli
            .strategies
            .clone()
            .unwrap_or(defaults.strategies.clone()),
        ..defaults
    };
    if cli.format == OutputFormat::Csv {
        eprintln!("error: the prefix workload prints --format table or json");
        return ExitCode::from(2);
    }
    let quiet = cli.quiet || !std::io::stderr().is_terminal();
    let mut on_progress = |s: &str, done: u64, total: u64| {
        if !quiet && (done == 0 || done == total) {
            eprintln!("{s}: {done}/{total}");
        }
    };
    match bench::run(&config, &mut on_progress) {
        Ok(reports) => {
            let scenario = PrefixScenario::new(&config);
            match cli.format {
                OutputFormat::Json => print!("{}", bench::render_json(&scenario, &reports)),
                _ => print!("{}\n{}", scenario.header(), bench::render_table(&reports)),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.workload == Workload::Prefix {
        return run_prefix(&cli);
    }
    let config = cli.config();
    let scenario = match Scenario::from_config(&config) {
        Ok(scenario) => scenario,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let format = Format::from(cli.format);
    let mut out = std::io::stdout().lock();
    if format == Format::Table {
        let _ = writeln!(out, "{}", scenario.header());
        let _ = out.flush();
    }
    let bar = progress_bar(&config, cli.quiet);
    // Each strategy reports `done == 0` when it starts; earlier ones are complete.
    let mut finished_before = 0u64;
    let mut started = false;
    let mut on_progress = |strategy: &str, done: u64, total: u64| {
        if done == 0 {
            if started {
                finished_before += total;
            }
            started = true;
            bar.set_message(strategy.to_owned());
        }
        bar.set_position(finished_before + done);
    };
    let reports = sim::run(&config, &mut on_progress);
    bar.finish_and_clear();
    match reports {
        Ok(reports) => {
            let _ = write!(out, "{}", sim::render(&reports, format));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
