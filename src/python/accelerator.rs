//! `Accelerator` and `Request`, as the seed API spells them.

use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;

use super::conversion::{non_negative, IntoPyResult};
use crate::accelerator::Accelerator;
use crate::demand::validate_cost;
use crate::fleet::Slot;
use crate::router::Router;

/// An accelerator description; once added to a router, `current_load` reads live.
#[pyclass(name = "Accelerator", module = "fleetroute._native", frozen)]
pub struct PyAccelerator {
    pub spec: Accelerator,
    live: OnceLock<(Arc<Router>, Slot)>,
}

impl PyAccelerator {
    pub fn attached(spec: Accelerator, router: Arc<Router>, slot: Slot) -> Self {
        let live = OnceLock::new();
        let _ = live.set((router, slot));
        PyAccelerator { spec, live }
    }

    /// Binds this object to the router that registered it (first router wins).
    pub fn attach(&self, router: &Arc<Router>, slot: Slot) {
        let _ = self.live.set((Arc::clone(router), slot));
    }
}

#[pymethods]
impl PyAccelerator {
    #[new]
    #[pyo3(signature = (id, capacity, weight = 1.0, healthy = true))]
    fn new(id: i64, capacity: i64, weight: f64, healthy: bool) -> PyResult<Self> {
        let spec = Accelerator {
            id: non_negative(id, "id")?,
            capacity: non_negative(capacity, "capacity")?,
            weight,
            healthy,
        };
        spec.validate().py()?;
        Ok(PyAccelerator {
            spec,
            live: OnceLock::new(),
        })
    }

    #[getter]
    fn id(&self) -> u64 {
        self.spec.id
    }

    /// Live capacity once registered, else the value given.
    #[getter]
    fn capacity(&self) -> u64 {
        self.live
            .get()
            .map_or(self.spec.capacity, |(r, s)| r.fleet().state(*s).capacity())
    }

    /// Live weight once registered, else the value given.
    #[getter]
    fn weight(&self) -> f64 {
        self.live
            .get()
            .map_or(self.spec.weight, |(r, s)| r.fleet().state(*s).weight())
    }

    /// Live health once registered, else the value given.
    #[getter]
    fn healthy(&self) -> bool {
        self.live
            .get()
            .map_or(self.spec.healthy, |(r, s)| r.fleet().state(*s).is_healthy())
    }

    /// Load units in flight on this accelerator (0 before it is registered).
    #[getter]
    fn current_load(&self) -> u64 {
        self.live
            .get()
            .map_or(0, |(r, s)| r.fleet().state(*s).load())
    }

    fn __repr__(&self) -> String {
        format!(
            "Accelerator(id={}, capacity={}, weight={:?}, healthy={}, current_load={})",
            self.id(),
            self.capacity(),
            self.weight(),
            if self.healthy() { "True" } else { "False" },
            self.current_load()
        )
    }
}

/// One request: id, cost (load units, >= 1) and priority (0 normal, >= 1 high).
#[pyclass(name = "Request", module = "fleetroute._native", frozen)]
pub struct PyRequest {
    pub request: crate::request::Request,
}

#[pymethods]
impl PyRequest {
    #[new]
    #[pyo3(signature = (id, cost = 1, priority = 0))]
    fn new(id: i64, cost: i64, priority: i64) -> PyResult<Self> {
        let cost = non_negative(cost, "cost")?;
        validate_cost(cost).py()?;
        let priority = non_negative(priority, "priority")?;
        Ok(PyRequest {
            request: crate::request::Request::new(
                non_negative(id, "id")?,
                cost,
                u32::try_from(priority).unwrap_or(u32::MAX),
            ),
        })
    }

    #[getter]
    fn id(&self) -> u64 {
        self.request.id
    }

    #[getter]
    fn cost(&self) -> u64 {
        self.request.cost
    }

    #[getter]
    fn priority(&self) -> u32 {
        self.request.priority
    }

    fn __repr__(&self) -> String {
        let r = &self.request;
        format!(
            "Request(id={}, cost={}, priority={})",
            r.id, r.cost, r.priority
        )
    }
}
