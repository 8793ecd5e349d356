//! Python bindings: argument conversion and error mapping only. Every decision is
//! made by the core types these wrap.

mod accelerator;
mod candidates;
mod conversion;
mod limiter;
mod router;
mod simulation;

use pyo3::prelude::*;

/// The native module `fleetroute._native`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<accelerator::PyAccelerator>()?;
    m.add_class::<accelerator::PyRequest>()?;
    m.add_class::<router::PyRouter>()?;
    m.add_class::<candidates::PyCandidateSet>()?;
    m.add_class::<limiter::PyTokenBucket>()?;
    m.add_class::<limiter::PyKeyedTokenBucket>()?;
    m.add_function(wrap_pyfunction!(conversion::jump_hash, m)?)?;
    m.add_function(wrap_pyfunction!(conversion::hash_key, m)?)?;
    m.add_function(wrap_pyfunction!(simulation::simulate, m)?)?;
    m.add("STRATEGIES", crate::strategy::STRATEGY_NAMES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
