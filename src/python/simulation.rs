//! Simulation bindings: `simulate(...)` runs [`crate::sim::run`] without the GIL and
//! returns one dict per strategy, keyed by [`crate::sim::StrategyReport::fields`].

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::conversion::{non_negative, IntoPyResult};
use crate::sim::report::FieldValue;
use crate::sim::SimConfig;

/// Simulates the fleet behind the router for each strategy on the same arrivals and
/// returns a list of dicts (strategy, throughput, latencies, rejections, balance,
/// wall-clock speed and the scenario). `strategies=None` runs all of them.
#[pyfunction]
#[pyo3(signature = (
    accelerators = 10_000,
    load_factor = 0.9,
    requests = 1_000_000,
    staleness = 0.0,
    seed = 42,
    strategies = None,
    queue_factor = 1.0,
    service_shape = crate::sim::config::DEFAULT_SERVICE_SHAPE,
))]
#[allow(clippy::too_many_arguments)]
pub fn simulate<'py>(
    py: Python<'py>,
    accelerators: i64,
    load_factor: f64,
    requests: i64,
    staleness: f64,
    seed: i64,
    strategies: Option<Vec<String>>,
    queue_factor: f64,
    service_shape: f64,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let defaults = SimConfig::default();
    let config = SimConfig {
        accelerators: usize::try_from(non_negative(accelerators, "accelerators")?)
            .unwrap_or(usize::MAX),
        load_factor,
        requests: non_negative(requests, "requests")?,
        staleness,
        seed: non_negative(seed, "seed")?,
        strategies: strategies.unwrap_or(defaults.strategies.clone()),
        queue_factor,
        service_shape,
        ..defaults
    };
    let reports = py
        .detach(|| crate::sim::run(&config, &mut |_, _, _| {}))
        .py()?;
    reports
        .iter()
        .map(|report| {
            let dict = PyDict::new(py);
            for (name, value) in report.fields() {
                match value {
                    FieldValue::Text(s) => dict.set_item(name, s)?,
                    FieldValue::Int(i) => dict.set_item(name, i)?,
                    FieldValue::Float(f) => dict.set_item(name, f)?,
                }
            }
            Ok(dict)
        })
        .collect()
}
