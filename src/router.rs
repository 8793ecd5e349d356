//! The router: a [`Fleet`] plus one [`Strategy`], and the operations a caller needs
//! around a decision (register, route, release, batch forms, snapshots).
//!
//! Every method takes `&self`: share a `Router` between threads with an `Arc`. Routing
//! never locks; registry changes lock only against each other.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_xoshiro::SplitMix64;

use crate::accelerator::Accelerator;
use crate::demand::{validate_cost, Candidates, Decision, Demand, HIGH_PRIORITY};
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};
use crate::joint::{route_joint, ModelChoice};
use crate::request::Request;
use crate::strategy::Strategy;

/// A random source seeded from the router's stream on first use, so strategies that
/// draw no random numbers (round robin, least connections) pay nothing for it. One
/// decision draws only a few numbers, so SplitMix64 (one word of state, nothing to
/// fill at seeding) serves it; batches and long runs use `SmallRng`.
struct LazyRng<'a> {
    seeds: &'a AtomicU64,
    rng: Option<SplitMix64>,
}

impl LazyRng<'_> {
    #[inline]
    fn get(&mut self) -> &mut SplitMix64 {
        let seeds = self.seeds;
        self.rng
            .get_or_insert_with(|| SplitMix64::seed_from_u64(seeds.fetch_add(1, Ordering::Relaxed)))
    }
}

impl rand::RngCore for LazyRng<'_> {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        self.get().next_u32()
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.get().next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.get().fill_bytes(dest)
    }
}

/// Options beyond the strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterOptions {
    /// Seed for the strategies' randomness; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Share of every accelerator's capacity that only priority >= 1 may use, in
    /// `[0, 1)`. See [`Demand`].
    pub priority_reserve: f64,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            seed: None,
            priority_reserve: 0.1,
        }
    }
}

/// Routes requests over a fleet with one strategy.
#[derive(Debug)]
pub struct Router {
    fleet: Fleet,
    strategy: Strategy,
    reserve_ppm: u32,
    seeds: CachePadded<AtomicU64>,
}

impl Router {
    /// A router with default options (10% priority reserve, OS-seeded).
    pub fn new(strategy: impl Into<Strategy>) -> Self {
        Self::with_options(strategy, RouterOptions::default()).expect("default options are valid")
    }

    /// A router with explicit options.
    pub fn with_options(strategy: impl Into<Strategy>, options: RouterOptions) -> Result<Self> {
        let reserve = options.priority_reserve;
        if !(0.0..1.0).contains(&reserve) {
            return Err(RouterError::invalid(
                "priority_reserve",
                format!("priority_reserve must be in [0, 1) (got {reserve})"),
            ));
        }
        let seed = options.seed.unwrap_or_else(rand::random);
        Ok(Router {
            fleet: Fleet::new(),
            strategy: strategy.into(),
            reserve_ppm: (reserve * 1e6).round() as u32,
            seeds: CachePadded::new(AtomicU64::new(seed)),
        })
    }

    /// A router by strategy name (see [`Strategy::from_name`]).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(Self::new(Strategy::from_name(name, None, None)?))
    }

    /// The fleet.
    #[inline]
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// The strategy.
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// The priority reserve as a fraction.
    pub fn priority_reserve(&self) -> f64 {
        self.reserve_ppm as f64 / 1e6
    }

    /// A fresh random stream for one call (deterministic under a fixed seed).
    #[inline]
    pub fn rng(&self) -> SmallRng {
        SmallRng::seed_from_u64(self.seeds.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers an accelerator.
    pub fn add_accelerator(&self, accelerator: Accelerator) -> Result<Slot> {
        let slot = self.fleet.add(accelerator)?;
        self.strategy.after_add(&self.fleet, slot..slot + 1);
        Ok(slot)
    }

    /// Registers many accelerators, all or none.
    pub fn add_accelerators(&self, accelerators: &[Accelerator]) -> Result<()> {
        let slots = self.fleet.add_many(accelerators)?;
        self.strategy.after_add(&self.fleet, slots);
        Ok(())
    }

    /// Unregisters an accelerator. Its in-flight load is forgotten with it: later
    /// releases for it are refused as for an unknown id.
    pub fn remove_accelerator(&self, id: u64) -> Result<()> {
        let slot = self.fleet.remove(id)?;
        self.strategy
            .after_remove(&self.fleet, slot, self.fleet.state(slot).load());
        Ok(())
    }

    /// Marks an accelerator healthy or unhealthy.
    pub fn set_healthy(&self, id: u64, healthy: bool) -> Result<()> {
        let slot = self.fleet.set_healthy(id, healthy)?;
        self.strategy.after_change(&self.fleet, slot);
        Ok(())
    }

    /// Changes an accelerator's capacity.
    pub fn set_capacity(&self, id: u64, capacity: u64) -> Result<()> {
        let slot = self.fleet.set_capacity(id, capacity)?;
        self.strategy.after_change(&self.fleet, slot);
        Ok(())
    }

    /// Changes an accelerator's weight.
    pub fn set_weight(&self, id: u64, weight: f64) -> Result<()> {
        self.fleet.set_weight(id, weight).map(|_| ())
    }

    /// The demand of a request of `cost` at `priority` on this router.
    pub fn demand(&self, cost: u64, priority: u32) -> Result<Demand> {
        Demand::new(cost, priority, self.reserve_ppm)
    }

    /// Routes one request with a caller-supplied random source (one per thread in
    /// multi-threaded Rust callers). Returns the slot that took the load.
    #[inline]
    pub fn route_slot<R: Rng + ?Sized>(
        &self,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        self.strategy.pick(&self.fleet, decision, rng)
    }

    /// Routes one request and returns the accelerator id that took its load, or
    /// `None` when no allowed accelerator can take it. Key-routing strategies need a
    /// key (already hashed, see [`crate::hashing::hash_bytes`]).
    pub fn route(
        &self,
        cost: u64,
        priority: u32,
        key: Option<u64>,
        candidates: Option<&Candidates>,
    ) -> Result<Option<u64>> {
        let decision = Decision {
            demand: self.demand(cost, priority)?,
            key,
            candidates,
            prefix: None,
            adapter: None,
            now_ns: None,
        };
        self.route_decision(&decision)
    }

    /// Refuses a decision without a key under a strategy that routes by key.
    fn require_key(&self, has_key: bool) -> Result<()> {
        if !has_key && self.strategy.uses_key() {
            return Err(RouterError::invalid(
                "key",
                format!("strategy {} routes by key; pass key=", self.strategy.name()),
            ));
        }
        Ok(())
    }

    /// A random source seeded from the router's stream only if a strategy draws.
    fn lazy_rng(&self) -> LazyRng<'_> {
        LazyRng {
            seeds: &self.seeds,
            rng: None,
        }
    }

    /// Routes one fully described decision (key, candidates, the caller's clock) and
    /// returns the accelerator id that took its load, or `None`.
    pub fn route_decision(&self, decision: &Decision<'_>) -> Result<Option<u64>> {
        self.require_key(decision.key.is_some())?;
        let mut rng = self.lazy_rng();
        Ok(self
            .route_slot(decision, &mut rng)
            .map(|slot| self.fleet.state(slot).id()))
    }

    /// Routes to the first candidate, in the candidates' order, that can take the
    /// demand: a strict preference order (a fallback chain), blind to load except
    /// for the capacity check. Returns the accelerator id that took the load.
    pub fn route_in_order(&self, demand: Demand, candidates: &Candidates) -> Option<u64> {
        let decision = Decision {
            candidates: Some(candidates),
            ..Decision::new(demand)
        };
        let slot = decision.first_fit(&self.fleet, 0)?;
        self.strategy.after_take(&self.fleet, slot, demand.cost);
        Some(self.fleet.state(slot).id())
    }

    /// The joint decision ([`crate::joint`]): the best model group by score, the
    /// roomiest model within it, a replica by the strategy. Returns the chosen
    /// model's index and the replica's id.
    pub fn route_joint(
        &self,
        models: &[ModelChoice<'_>],
        template: &Decision<'_>,
        tolerance: f64,
    ) -> Result<Option<(usize, u64)>> {
        self.require_key(template.key.is_some())?;
        let mut rng = self.lazy_rng();
        Ok(route_joint(self, models, template, tolerance, &mut rng)?
            .map(|choice| (choice.model, self.fleet.state(choice.slot).id())))
    }

    /// The seed API: routes `request` (its id is the key for hashing strategies).
    /// Returns `None` for a request that cannot be placed, including cost 0.
    pub fn route_request(&self, request: &Request) -> Option<u64> {
        self.route(request.cost, request.priority, Some(request.id), None)
            .ok()
            .flatten()
    }

    /// Returns `cost` units of load on `id`. Refused (and nothing changed) for an
    /// unknown id or a release that would take the load below zero.
    pub fn release(&self, id: u64, cost: u64) -> Result<()> {
        validate_cost(cost)?;
        let slot = self.fleet.slot_of(id)?;
        self.release_slot(slot, cost)
    }

    /// [`Router::release`] by slot. Refused for a removed accelerator.
    #[inline]
    pub fn release_slot(&self, slot: Slot, cost: u64) -> Result<()> {
        let state = self.fleet.state(slot);
        if !state.is_registered() {
            return Err(RouterError::UnknownId(state.id()));
        }
        state.release(cost)?;
        self.strategy.after_release(&self.fleet, slot, cost);
        Ok(())
    }

    /// Routes a batch: `out[i]` is the id that took request `i`, or -1. Costs are
    /// validated before anything is routed.
    pub fn route_batch(
        &self,
        costs: &[u64],
        keys: Option<&[u64]>,
        priority: u32,
        out: &mut [i64],
    ) -> Result<()> {
        if out.len() != costs.len() {
            return Err(RouterError::invalid(
                "out",
                format!("{} outputs for {} costs", out.len(), costs.len()),
            ));
        }
        if let Some(keys) = keys {
            if keys.len() != costs.len() {
                return Err(RouterError::invalid(
                    "keys",
                    format!("{} keys for {} costs", keys.len(), costs.len()),
                ));
            }
        } else if self.strategy.uses_key() {
            return Err(RouterError::invalid(
                "keys",
                format!(
                    "strategy {} routes by key; pass keys=",
                    self.strategy.name()
                ),
            ));
        }
        if let Some(i) = costs.iter().position(|&c| c == 0) {
            return Err(RouterError::invalid(
                "costs",
                format!("costs[{i}] is 0; every cost must be at least 1"),
            ));
        }
        let mut rng = self.rng();
        let reserve_ppm = self.reserve_ppm;
        let decision = |i: usize| Decision {
            demand: Demand {
                cost: costs[i],
                reserve_ppm: if priority >= HIGH_PRIORITY {
                    0
                } else {
                    reserve_ppm
                },
            },
            key: keys.map(|k| k[i]),
            candidates: None,
            prefix: None,
            adapter: None,
            now_ns: None,
        };
        let fleet = &self.fleet;
        let emit = |i: usize, slot: Option<Slot>| {
            out[i] = slot.map_or(-1, |slot| fleet.state(slot).id() as i64);
        };
        match &self.strategy {
            Strategy::PowerOfTwoChoices(p2c) => {
                p2c.pick_batch(fleet, costs.len(), decision, &mut rng, emit)
            }
            strategy => {
                let mut emit = emit;
                for i in 0..costs.len() {
                    emit(i, strategy.pick(fleet, &decision(i), &mut rng));
                }
            }
        }
        Ok(())
    }

    /// Routes a batch of fully described decisions (prompts, adapters, keys) in
    /// order: `out[i]` is the id that took decision `i`, or -1.
    pub fn route_many(&self, decisions: &[Decision<'_>], out: &mut [i64]) -> Result<()> {
        if out.len() != decisions.len() {
            return Err(RouterError::invalid(
                "out",
                format!("{} outputs for {} decisions", out.len(), decisions.len()),
            ));
        }
        if self.strategy.uses_key() {
            if let Some(i) = decisions.iter().position(|d| d.key.is_none()) {
                return Err(RouterError::invalid(
                    "keys",
                    format!(
                        "strategy {} routes by key; decision {i} has none",
                        self.strategy.name()
                    ),
                ));
            }
        }
        let mut rng = self.rng();
        for (decision, slot_out) in decisions.iter().zip(out.iter_mut()) {
            *slot_out = match self.route_slot(decision, &mut rng) {
                Some(slot) => self.fleet.state(slot).id() as i64,
                None => -1,
            };
        }
        Ok(())
    }

    /// Feeds many observed latencies at once: all of them, or (on an unknown id or
    /// a bad value) none.
    pub fn report_latencies(
        &self,
        ids: &[u64],
        latencies_s: &[f64],
        now_ns: Option<u64>,
    ) -> Result<()> {
        let slots = self.resolve_reports(ids, latencies_s.len(), "latencies")?;
        for &latency in latencies_s {
            crate::latency_estimate::validate_latency(latency)?;
        }
        for (slot, &latency) in slots.into_iter().zip(latencies_s) {
            self.strategy.observe_latency(slot, latency, now_ns)?;
        }
        Ok(())
    }

    /// Records many KV-cache utilisation reports at once: all, or none.
    pub fn report_kv_utilisations(&self, ids: &[u64], utilisations: &[f64]) -> Result<()> {
        let slots = self.resolve_reports(ids, utilisations.len(), "utilisations")?;
        for &utilisation in utilisations {
            crate::strategy::endpoint_picker::validate_kv_utilisation(utilisation)?;
        }
        for (slot, &utilisation) in slots.into_iter().zip(utilisations) {
            self.strategy.report_kv_utilisation(slot, utilisation)?;
        }
        Ok(())
    }

    fn resolve_reports(&self, ids: &[u64], values: usize, what: &'static str) -> Result<Vec<Slot>> {
        if ids.len() != values {
            return Err(RouterError::invalid(
                what,
                format!("{values} {what} for {} ids", ids.len()),
            ));
        }
        ids.iter().map(|&id| self.fleet.slot_of(id)).collect()
    }

    /// Releases a batch: all of it, or (on an unknown id, a negative id or a release
    /// below zero) none of it. Entries with id -1 (unrouted) are skipped.
    pub fn release_batch(&self, ids: &[i64], costs: &[u64]) -> Result<()> {
        if ids.len() != costs.len() {
            return Err(RouterError::invalid(
                "costs",
                format!("{} costs for {} ids", costs.len(), ids.len()),
            ));
        }
        let mut resolved: Vec<(Slot, u64)> = Vec::with_capacity(ids.len());
        for (i, (&id, &cost)) in ids.iter().zip(costs).enumerate() {
            if id == -1 {
                continue;
            }
            if id < 0 {
                return Err(RouterError::invalid("ids", format!("ids[{i}] is {id}")));
            }
            if cost == 0 {
                return Err(RouterError::invalid("costs", format!("costs[{i}] is 0")));
            }
            resolved.push((self.fleet.slot_of(id as u64)?, cost));
        }
        for (done, &(slot, cost)) in resolved.iter().enumerate() {
            if let Err(err) = self.fleet.state(slot).release(cost) {
                for &(slot, cost) in &resolved[..done] {
                    self.fleet.state(slot).restore(cost);
                }
                return Err(err);
            }
        }
        for (slot, cost) in resolved {
            self.strategy.after_release(&self.fleet, slot, cost);
        }
        Ok(())
    }

    /// Feeds an observed latency (seconds) of `id` to a latency-aware strategy, at
    /// the caller's time `now_ns` or the strategy's clock. Other strategies ignore it
    /// (after checking the id and the value).
    pub fn report_latency(&self, id: u64, latency_s: f64, now_ns: Option<u64>) -> Result<()> {
        let slot = self.fleet.slot_of(id)?;
        self.strategy.observe_latency(slot, latency_s, now_ns)
    }

    /// Records the KV-cache utilisation (`[0, 1]`) replica `id` reports, for the
    /// endpoint picker (other strategies check the value and ignore it).
    pub fn report_kv_utilisation(&self, id: u64, utilisation: f64) -> Result<()> {
        let slot = self.fleet.slot_of(id)?;
        self.strategy.report_kv_utilisation(slot, utilisation)
    }

    /// Records the LoRA adapters (names, hashed with [`crate::hashing::hash_bytes`])
    /// replica `id` reports loaded, for the endpoint picker.
    pub fn report_adapters(&self, id: u64, adapters: &[u64]) -> Result<()> {
        let slot = self.fleet.slot_of(id)?;
        self.strategy.report_adapters(slot, adapters);
        Ok(())
    }

    /// The latency estimate (seconds) of `id` under a latency-aware strategy, `None`
    /// under the others.
    pub fn latency_estimate(&self, id: u64, now_ns: Option<u64>) -> Result<Option<f64>> {
        let slot = self.fleet.slot_of(id)?;
        Ok(self.strategy.latency_estimate(slot, now_ns))
    }

    /// Bytes held by the accelerator arena and the strategy's index (the id index is
    /// not counted; the benchmarks measure it through RSS).
    pub fn memory_bytes(&self) -> usize {
        self.fleet.arena_bytes() + self.strategy.index_bytes()
    }

    /// Ids and loads of the registered accelerators, in registration order.
    pub fn loads(&self) -> (Vec<u64>, Vec<u64>) {
        self.fleet.iter().map(|(_, s)| (s.id(), s.load())).unzip()
    }
}
