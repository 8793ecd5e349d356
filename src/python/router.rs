//! `Router`: the Python face of [`crate::router::Router`].

use std::sync::Arc;

use numpy::{AllowTypeChange, PyArray1, PyArrayLike1, PyArrayMethods};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::accelerator::{PyAccelerator, PyRequest};
use super::candidates::PyCandidateSet;
use super::conversion::{
    int_array, key_from_py, non_negative, optional_u64, seconds_to_ns, to_py_err, IntoPyResult,
};
use crate::demand::{Candidates, Decision};
use crate::error::RouterError;
use crate::hashing::hash_bytes;
use crate::joint::ModelChoice;
use crate::prefix::{prefix_block_hashes, prefix_block_hashes_tokens};
use crate::router::{Router, RouterOptions};
use crate::strategy::endpoint_picker::ScorerWeights;
use crate::strategy::{Strategy, StrategyOptions};

/// Routes requests over a fleet of accelerators with one strategy.
#[pyclass(name = "Router", module = "fleetroute._native", frozen)]
pub struct PyRouter {
    inner: Arc<Router>,
}

fn non_negative_vec(values: &[i64], what: &'static str) -> PyResult<Vec<u64>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u64::try_from(v).map_err(|_| {
                RouterError::invalid(what, format!("{what}[{i}] must be >= 0 (got {v})"))
            })
        })
        .collect::<Result<Vec<u64>, _>>()
        .py()
}

/// A prompt's chained block hashes: str and bytes hash their bytes, a sequence of
/// ints hashes token ids.
fn prompt_blocks(prompt: &Bound<'_, PyAny>, block_size: usize) -> PyResult<Vec<u64>> {
    if let Ok(text) = prompt.cast::<PyString>() {
        return prefix_block_hashes(text.to_str()?.as_bytes(), block_size).py();
    }
    if let Ok(bytes) = prompt.cast::<PyBytes>() {
        return prefix_block_hashes(bytes.as_bytes(), block_size).py();
    }
    let tokens: Vec<u32> = prompt.extract().map_err(|_| {
        to_py_err(RouterError::invalid(
            "prompt",
            format!(
                "prompt must be str, bytes or a sequence of token ids in [0, 2**32) (got {})",
                prompt.get_type()
            ),
        ))
    })?;
    prefix_block_hashes_tokens(&tokens, block_size).py()
}

fn priority_from(priority: i64) -> PyResult<u32> {
    Ok(u32::try_from(non_negative(priority, "priority")?).unwrap_or(u32::MAX))
}

impl PyRouter {
    /// Candidates given as accelerator ids, or as a numpy boolean mask in
    /// registration order.
    fn candidates(&self, given: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Candidates>> {
        let Some(given) = given else {
            return Ok(None);
        };
        let fleet = self.inner.fleet();
        if let Ok(mask) = given.cast::<PyArray1<bool>>() {
            return Candidates::from_mask(fleet, mask.readonly().as_slice()?)
                .py()
                .map(Some);
        }
        let ids = non_negative_vec(&int_array(given, "candidates")?, "candidates")?;
        Candidates::from_ids(fleet, ids).py().map(Some)
    }
}

#[pymethods]
impl PyRouter {
    #[new]
    #[pyo3(signature = (
        strategy = "p2c",
        *,
        hash = None,
        load_bound = None,
        default_rtt = None,
        decay = None,
        cache_threshold = None,
        balance_abs_threshold = None,
        balance_rel_threshold = None,
        block_size = None,
        max_prefix_blocks = None,
        queue_weight = None,
        kv_cache_weight = None,
        prefix_weight = None,
        adapter_weight = None,
        kv_cache_limit = None,
        top_k = None,
        seed = None,
        priority_reserve = 0.1,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        strategy: &str,
        hash: Option<&str>,
        load_bound: Option<f64>,
        default_rtt: Option<f64>,
        decay: Option<f64>,
        cache_threshold: Option<f64>,
        balance_abs_threshold: Option<i64>,
        balance_rel_threshold: Option<f64>,
        block_size: Option<i64>,
        max_prefix_blocks: Option<i64>,
        queue_weight: Option<f64>,
        kv_cache_weight: Option<f64>,
        prefix_weight: Option<f64>,
        adapter_weight: Option<f64>,
        kv_cache_limit: Option<f64>,
        top_k: Option<i64>,
        seed: Option<&Bound<'_, PyAny>>,
        priority_reserve: f64,
    ) -> PyResult<Self> {
        let seed = optional_u64(seed, "seed")?;
        let count = |value: Option<i64>, what| -> PyResult<Option<usize>> {
            value
                .map(|v| Ok(usize::try_from(non_negative(v, what)?).unwrap_or(usize::MAX)))
                .transpose()
        };
        let options = StrategyOptions {
            hash,
            load_bound,
            default_rtt_s: default_rtt,
            decay_s: decay,
            cache_threshold,
            balance_abs_threshold: balance_abs_threshold
                .map(|v| non_negative(v, "balance_abs_threshold"))
                .transpose()?,
            balance_rel_threshold,
            block_size: count(block_size, "block_size")?,
            max_prefix_blocks: count(max_prefix_blocks, "max_prefix_blocks")?,
            scorer_weights: ScorerWeights::overriding(
                queue_weight,
                kv_cache_weight,
                prefix_weight,
                adapter_weight,
            ),
            kv_cache_limit,
            top_k: count(top_k, "top_k")?,
        };
        let strategy = Strategy::from_options(strategy, &options).py()?;
        let options = RouterOptions {
            seed,
            priority_reserve,
        };
        Ok(PyRouter {
            inner: Arc::new(Router::with_options(strategy, options).py()?),
        })
    }

    /// The strategy's name.
    #[getter]
    fn strategy(&self) -> &'static str {
        self.inner.strategy().name()
    }

    /// Share of capacity only priority >= 1 may use.
    #[getter]
    fn priority_reserve(&self) -> f64 {
        self.inner.priority_reserve()
    }

    fn __len__(&self) -> usize {
        self.inner.fleet().len()
    }

    fn __contains__(&self, id: i64) -> bool {
        u64::try_from(id).is_ok_and(|id| self.inner.fleet().contains(id))
    }

    fn __repr__(&self) -> String {
        format!(
            "Router(strategy={:?}, accelerators={})",
            self.strategy(),
            self.__len__()
        )
    }

    /// Registers one accelerator; `acc.current_load` then reads live.
    fn add_accelerator(&self, accelerator: &Bound<'_, PyAccelerator>) -> PyResult<()> {
        let acc = accelerator.get();
        let slot = self.inner.add_accelerator(acc.spec).py()?;
        acc.attach(&self.inner, slot);
        Ok(())
    }

    /// Registers many accelerators in one step: all of them or none.
    fn add_accelerators(&self, accelerators: Vec<Bound<'_, PyAccelerator>>) -> PyResult<()> {
        let specs: Vec<_> = accelerators.iter().map(|a| a.get().spec).collect();
        self.inner.add_accelerators(&specs).py()?;
        for acc in &accelerators {
            let slot = self.inner.fleet().slot_of(acc.get().spec.id).py()?;
            acc.get().attach(&self.inner, slot);
        }
        Ok(())
    }

    /// Registers `len(ids)` accelerators from arrays (the fast bulk form).
    #[pyo3(signature = (ids, capacities, weights = None))]
    fn add_fleet(
        &self,
        ids: &Bound<'_, PyAny>,
        capacities: &Bound<'_, PyAny>,
        weights: Option<PyArrayLike1<'_, f64, AllowTypeChange>>,
    ) -> PyResult<()> {
        let ids = non_negative_vec(&int_array(ids, "ids")?, "ids")?;
        let capacities = non_negative_vec(&int_array(capacities, "capacities")?, "capacities")?;
        let weights = match &weights {
            Some(w) => w.as_slice()?.to_vec(),
            None => vec![1.0; ids.len()],
        };
        if capacities.len() != ids.len() || weights.len() != ids.len() {
            return Err(RouterError::invalid(
                "add_fleet",
                format!(
                    "ids, capacities and weights differ in length ({}, {}, {})",
                    ids.len(),
                    capacities.len(),
                    weights.len()
                ),
            ))
            .py();
        }
        let specs: Vec<_> = ids
            .iter()
            .zip(&capacities)
            .zip(&weights)
            .map(|((&id, &capacity), &weight)| crate::Accelerator {
                id,
                capacity,
                weight,
                healthy: true,
            })
            .collect();
        self.inner.add_accelerators(&specs).py()
    }

    /// Unregisters an accelerator.
    fn remove_accelerator(&self, acc_id: i64) -> PyResult<()> {
        self.inner
            .remove_accelerator(non_negative(acc_id, "acc_id")?)
            .py()
    }

    fn set_healthy(&self, acc_id: i64, healthy: bool) -> PyResult<()> {
        self.inner
            .set_healthy(non_negative(acc_id, "acc_id")?, healthy)
            .py()
    }

    fn set_capacity(&self, acc_id: i64, capacity: i64) -> PyResult<()> {
        self.inner
            .set_capacity(
                non_negative(acc_id, "acc_id")?,
                non_negative(capacity, "capacity")?,
            )
            .py()
    }

    fn set_weight(&self, acc_id: i64, weight: f64) -> PyResult<()> {
        self.inner
            .set_weight(non_negative(acc_id, "acc_id")?, weight)
            .py()
    }

    /// A live view of one registered accelerator.
    fn accelerator(&self, acc_id: i64) -> PyResult<PyAccelerator> {
        let id = non_negative(acc_id, "acc_id")?;
        let slot = self.inner.fleet().slot_of(id).py()?;
        let spec = self.inner.fleet().state(slot).spec();
        Ok(PyAccelerator::attached(spec, Arc::clone(&self.inner), slot))
    }

    /// Load units in flight on `acc_id` now (cheaper than `accelerator(id).current_load`).
    fn load(&self, acc_id: i64) -> PyResult<u64> {
        let id = non_negative(acc_id, "acc_id")?;
        Ok(self.inner.fleet().get(id).py()?.load())
    }

    /// The seed API: routes `request`; returns the accelerator id or None.
    fn route_request(&self, request: &Bound<'_, PyRequest>) -> Option<u64> {
        self.inner.route_request(&request.get().request)
    }

    /// Routes one request; returns the accelerator id that took it, or None.
    /// `now` (seconds, the caller's clock) is read by time-aware strategies;
    /// `prompt` (text, bytes or token ids) by cache-aware routing.
    #[pyo3(signature = (cost = 1, priority = 0, key = None, candidates = None, now = None, prompt = None, adapter = None))]
    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        cost: i64,
        priority: i64,
        key: Option<&Bound<'_, PyAny>>,
        candidates: Option<&Bound<'_, PyAny>>,
        now: Option<f64>,
        prompt: Option<&Bound<'_, PyAny>>,
        adapter: Option<&str>,
    ) -> PyResult<Option<u64>> {
        let key = key.map(key_from_py).transpose()?;
        let resolved;
        let candidates = match candidates.map(|c| c.cast::<PyCandidateSet>()) {
            Some(Ok(set)) => Some(set.get().for_router(&self.inner)?),
            Some(Err(_)) => {
                resolved = self.candidates(candidates)?;
                resolved.as_ref()
            }
            None => None,
        };
        let blocks = match (prompt, self.inner.strategy().prefix_block_size()) {
            (Some(prompt), Some(block_size)) => Some(prompt_blocks(prompt, block_size)?),
            _ => None,
        };
        let decision = Decision {
            demand: self
                .inner
                .demand(non_negative(cost, "cost")?, priority_from(priority)?)
                .py()?,
            key,
            candidates,
            prefix: blocks.as_deref(),
            adapter: adapter.map(|name| hash_bytes(name.as_bytes())),
            now_ns: now.map(seconds_to_ns).transpose()?,
        };
        self.inner.route_decision(&decision).py()
    }

    /// The joint decision: `models` is a list of `(score, replica ids)`; models within
    /// `tolerance` of the best score count as equal and the roomiest goes first; the
    /// replica is picked by the router's strategy. Returns `(model index, id)`.
    #[pyo3(signature = (models, cost = 1, priority = 0, key = None, prompt = None, now = None, tolerance = 0.0, adapter = None))]
    #[allow(clippy::too_many_arguments)]
    fn route_joint(
        &self,
        models: Vec<(f64, Bound<'_, PyAny>)>,
        cost: i64,
        priority: i64,
        key: Option<&Bound<'_, PyAny>>,
        prompt: Option<&Bound<'_, PyAny>>,
        now: Option<f64>,
        tolerance: f64,
        adapter: Option<&str>,
    ) -> PyResult<Option<(usize, u64)>> {
        let fleet = self.inner.fleet();
        let pools = models
            .iter()
            .map(|(_, ids)| {
                let ids = non_negative_vec(&int_array(ids, "models")?, "models")?;
                Candidates::from_ids(fleet, ids).py()
            })
            .collect::<PyResult<Vec<Candidates>>>()?;
        let choices: Vec<ModelChoice<'_>> = models
            .iter()
            .zip(&pools)
            .map(|((score, _), replicas)| ModelChoice {
                score: *score,
                replicas,
            })
            .collect();
        let blocks = match (prompt, self.inner.strategy().prefix_block_size()) {
            (Some(prompt), Some(block_size)) => Some(prompt_blocks(prompt, block_size)?),
            _ => None,
        };
        let template = Decision {
            demand: self
                .inner
                .demand(non_negative(cost, "cost")?, priority_from(priority)?)
                .py()?,
            key: key.map(key_from_py).transpose()?,
            candidates: None,
            prefix: blocks.as_deref(),
            adapter: adapter.map(|name| hash_bytes(name.as_bytes())),
            now_ns: now.map(seconds_to_ns).transpose()?,
        };
        self.inner.route_joint(&choices, &template, tolerance).py()
    }

    /// Feeds the observed latency (seconds) of a finished request on `acc_id` to a
    /// latency-aware strategy (`peak_ewma`); other strategies check and ignore it.
    #[pyo3(signature = (acc_id, latency, now = None))]
    fn report_latency(&self, acc_id: i64, latency: f64, now: Option<f64>) -> PyResult<()> {
        let now_ns = now.map(seconds_to_ns).transpose()?;
        self.inner
            .report_latency(non_negative(acc_id, "acc_id")?, latency, now_ns)
            .py()
    }

    /// Records the KV-cache utilisation (0 to 1) replica `acc_id` reports, for
    /// `endpoint_picker`; other strategies check and ignore it.
    fn report_kv_utilisation(&self, acc_id: i64, utilisation: f64) -> PyResult<()> {
        self.inner
            .report_kv_utilisation(non_negative(acc_id, "acc_id")?, utilisation)
            .py()
    }

    /// Feeds many latencies (seconds) at once; all or none.
    #[pyo3(signature = (ids, latencies, now = None))]
    fn report_latencies(
        &self,
        ids: &Bound<'_, PyAny>,
        latencies: Vec<f64>,
        now: Option<f64>,
    ) -> PyResult<()> {
        let ids = non_negative_vec(&int_array(ids, "ids")?, "ids")?;
        let now_ns = now.map(seconds_to_ns).transpose()?;
        self.inner.report_latencies(&ids, &latencies, now_ns).py()
    }

    /// Records many KV-cache utilisation reports at once; all or none.
    fn report_kv_utilisations(
        &self,
        ids: &Bound<'_, PyAny>,
        utilisations: Vec<f64>,
    ) -> PyResult<()> {
        let ids = non_negative_vec(&int_array(ids, "ids")?, "ids")?;
        self.inner.report_kv_utilisations(&ids, &utilisations).py()
    }

    /// Records the LoRA adapters replica `acc_id` reports loaded (replacing its last
    /// report), for `endpoint_picker`; other strategies ignore it.
    fn report_adapters(&self, acc_id: i64, adapters: Vec<String>) -> PyResult<()> {
        let hashes: Vec<u64> = adapters.iter().map(|a| hash_bytes(a.as_bytes())).collect();
        self.inner
            .report_adapters(non_negative(acc_id, "acc_id")?, &hashes)
            .py()
    }

    /// The latency estimate (seconds) of `acc_id` under `peak_ewma`; None otherwise.
    #[pyo3(signature = (acc_id, now = None))]
    fn latency_estimate(&self, acc_id: i64, now: Option<f64>) -> PyResult<Option<f64>> {
        let now_ns = now.map(seconds_to_ns).transpose()?;
        self.inner
            .latency_estimate(non_negative(acc_id, "acc_id")?, now_ns)
            .py()
    }

    /// Resolves `candidates` (accelerator ids, kept in the order given, or a boolean
    /// mask in registration order) once, for use with many `route` calls.
    fn candidate_set(&self, candidates: &Bound<'_, PyAny>) -> PyResult<PyCandidateSet> {
        if let Ok(set) = candidates.cast::<PyCandidateSet>() {
            let resolved = set.get().for_router(&self.inner)?.clone();
            return Ok(PyCandidateSet::new(Arc::clone(&self.inner), resolved));
        }
        let resolved = self.candidates(Some(candidates))?.unwrap_or_default();
        Ok(PyCandidateSet::new(Arc::clone(&self.inner), resolved))
    }

    /// Routes to the first of `candidates`, in their order, that can take the load:
    /// a strict preference order, blind to load except for the capacity check.
    #[pyo3(signature = (candidates, cost = 1, priority = 0))]
    fn route_in_order(
        &self,
        candidates: &Bound<'_, PyAny>,
        cost: i64,
        priority: i64,
    ) -> PyResult<Option<u64>> {
        let demand = self
            .inner
            .demand(non_negative(cost, "cost")?, priority_from(priority)?)
            .py()?;
        if let Ok(set) = candidates.cast::<PyCandidateSet>() {
            let resolved = set.get().for_router(&self.inner)?;
            return Ok(self.inner.route_in_order(demand, resolved));
        }
        let resolved = self.candidates(Some(candidates))?.unwrap_or_default();
        Ok(self.inner.route_in_order(demand, &resolved))
    }

    /// Returns `cost` load units on `acc_id` when a request finishes.
    #[pyo3(signature = (acc_id, cost = 1))]
    fn release(&self, acc_id: i64, cost: i64) -> PyResult<()> {
        self.inner
            .release(non_negative(acc_id, "acc_id")?, non_negative(cost, "cost")?)
            .py()
    }

    /// Routes a whole batch in Rust with the GIL released; -1 where nothing fit.
    /// `prompts` and `adapters` (one per request) feed cache-aware strategies.
    #[pyo3(signature = (costs, keys = None, priority = 0, prompts = None, adapters = None))]
    fn route_batch<'py>(
        &self,
        py: Python<'py>,
        costs: &Bound<'py, PyAny>,
        keys: Option<&Bound<'py, PyAny>>,
        priority: i64,
        prompts: Option<&Bound<'py, PyAny>>,
        adapters: Option<Vec<Option<String>>>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let costs = non_negative_vec(&int_array(costs, "costs")?, "costs")?;
        let keys: Option<Vec<u64>> = match keys {
            None => None,
            Some(keys) => Some(
                keys.try_iter()?
                    .map(|k| key_from_py(&k?))
                    .collect::<PyResult<Vec<u64>>>()?,
            ),
        };
        let priority = priority_from(priority)?;
        let mut out = vec![0i64; costs.len()];
        let router = &self.inner;
        if prompts.is_none() && adapters.is_none() {
            py.detach(|| router.route_batch(&costs, keys.as_deref(), priority, &mut out))
                .py()?;
            return Ok(PyArray1::from_vec(py, out));
        }
        let per_request = |given: usize, what: &'static str| -> PyResult<()> {
            if given != costs.len() {
                return Err(RouterError::invalid(
                    what,
                    format!("{given} {what} for {} costs", costs.len()),
                ))
                .py();
            }
            Ok(())
        };
        if let Some(keys) = &keys {
            per_request(keys.len(), "keys")?;
        }
        let block_size = router.strategy().prefix_block_size();
        let blocks: Option<Vec<Vec<u64>>> = match (prompts, block_size) {
            (Some(prompts), Some(block_size)) => Some(
                prompts
                    .try_iter()?
                    .map(|p| prompt_blocks(&p?, block_size))
                    .collect::<PyResult<Vec<Vec<u64>>>>()?,
            ),
            _ => None,
        };
        if let Some(blocks) = &blocks {
            per_request(blocks.len(), "prompts")?;
        }
        if let Some(adapters) = &adapters {
            per_request(adapters.len(), "adapters")?;
        }
        let decisions = (0..costs.len())
            .map(|i| {
                Ok(Decision {
                    demand: router.demand(costs[i], priority).py()?,
                    key: keys.as_ref().map(|k| k[i]),
                    candidates: None,
                    prefix: blocks.as_ref().map(|b| b[i].as_slice()),
                    adapter: adapters
                        .as_ref()
                        .and_then(|a| a[i].as_ref())
                        .map(|name| hash_bytes(name.as_bytes())),
                    now_ns: None,
                })
            })
            .collect::<PyResult<Vec<Decision<'_>>>>()?;
        py.detach(|| router.route_many(&decisions, &mut out)).py()?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// Releases a batch (ids from `route_batch`; -1 entries skipped), all or nothing.
    fn release_batch(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        costs: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let ids = int_array(ids, "ids")?;
        let costs = non_negative_vec(&int_array(costs, "costs")?, "costs")?;
        let router = &self.inner;
        py.detach(|| router.release_batch(&ids, &costs)).py()
    }

    /// Loads of the registered accelerators, in registration order (see `ids()`).
    fn loads<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let loads = self.inner.fleet().iter().map(|(_, s)| s.load() as i64);
        PyArray1::from_iter(py, loads)
    }

    /// Ids of the registered accelerators, in registration order.
    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let ids = self.inner.fleet().iter().map(|(_, s)| s.id() as i64);
        PyArray1::from_iter(py, ids)
    }

    /// Capacities of the registered accelerators, in registration order.
    fn capacities<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let caps = self.inner.fleet().iter().map(|(_, s)| s.capacity() as i64);
        PyArray1::from_iter(py, caps)
    }

    /// Live views of every registered accelerator.
    fn accelerators(&self) -> Vec<PyAccelerator> {
        self.inner
            .fleet()
            .iter()
            .map(|(slot, s)| PyAccelerator::attached(s.spec(), Arc::clone(&self.inner), slot))
            .collect()
    }

    /// Bytes held by the accelerator arena and the strategy's index, in total.
    fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes()
    }
}
