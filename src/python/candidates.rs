//! `CandidateSet`: a candidate set resolved once against one router's fleet, so a
//! policy that routes many requests over the same allowed targets pays the O(n)
//! resolution when the set changes, not on every request.

use std::sync::Arc;

use pyo3::prelude::*;

use super::conversion::to_py_err;
use crate::demand::Candidates;
use crate::error::RouterError;
use crate::router::Router;

/// Allowed accelerators, resolved against one router (see `Router.candidate_set`).
#[pyclass(name = "CandidateSet", module = "fleetroute._native", frozen)]
pub struct PyCandidateSet {
    router: Arc<Router>,
    candidates: Candidates,
}

impl PyCandidateSet {
    pub(super) fn new(router: Arc<Router>, candidates: Candidates) -> Self {
        PyCandidateSet { router, candidates }
    }

    /// The resolved set, refused (`ValueError`) when it was built by another router:
    /// its slots would name other accelerators.
    pub(super) fn for_router(&self, router: &Arc<Router>) -> PyResult<&Candidates> {
        if Arc::ptr_eq(&self.router, router) {
            Ok(&self.candidates)
        } else {
            Err(to_py_err(RouterError::invalid(
                "candidates",
                "this CandidateSet was built by another Router",
            )))
        }
    }
}

#[pymethods]
impl PyCandidateSet {
    fn __len__(&self) -> usize {
        self.candidates.len()
    }

    fn __contains__(&self, acc_id: &Bound<'_, PyAny>) -> bool {
        acc_id
            .extract::<u64>()
            .ok()
            .and_then(|id| self.router.fleet().slot_of(id).ok())
            .is_some_and(|slot| self.candidates.contains(slot))
    }

    /// The allowed accelerator ids, in the set's order (removed ones left out).
    fn ids(&self) -> Vec<u64> {
        self.candidates
            .registered_ids(self.router.fleet())
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("CandidateSet(len={})", self.candidates.len())
    }
}
