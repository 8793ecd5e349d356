//! The joint decision: choose the model (or provider) by the policy's scores and the
//! replica by load and cache, in one call.
//!
//! Policies score models (cost, quality, latency, a learned gate); the router knows
//! which replica of each model has room. Deciding them apart fails in a known way:
//! the policy picks the cheapest of two equally good models, whose only replica is
//! saturated, while the other model's replica sits idle. Here models whose scores are
//! within `tolerance` of the best count as equally good, and among them the one whose
//! pool has the least utilised replica that can take the request is tried first; the
//! replica inside the pool is then picked by the router's own strategy (so cache
//! affinity, P2C, Peak-EWMA, ... apply). If no replica of that group can take the
//! request, the next group of models is tried, down to the last.

use rand::Rng;

use crate::demand::{Candidates, Decision};
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};
use crate::router::Router;

/// One model the policy allows: its score (higher is better) and its replicas.
#[derive(Debug, Clone, Copy)]
pub struct ModelChoice<'a> {
    /// The policy's score.
    pub score: f64,
    /// The model's replicas.
    pub replicas: &'a Candidates,
}

/// What the joint decision chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JointChoice {
    /// Index of the chosen model in the list given.
    pub model: usize,
    /// Slot of the replica that took the request.
    pub slot: Slot,
}

/// Validates the scores and the tolerance.
fn validate(models: &[ModelChoice<'_>], tolerance: f64) -> Result<()> {
    if !tolerance.is_finite() || tolerance < 0.0 {
        return Err(RouterError::invalid(
            "tolerance",
            format!("tolerance must be a finite number >= 0 (got {tolerance})"),
        ));
    }
    if let Some((i, m)) = models
        .iter()
        .enumerate()
        .find(|(_, m)| !m.score.is_finite())
    {
        return Err(RouterError::invalid(
            "models",
            format!("models[{i}] has a non-finite score ({})", m.score),
        ));
    }
    Ok(())
}

/// Lowest utilisation among a pool's replicas that could take the decision now, as
/// `(load, capacity)` for an exact comparison; `None` if none could.
fn best_room(fleet: &Fleet, decision: &Decision<'_>, pool: &Candidates) -> Option<(u64, u64)> {
    pool.slots()
        .iter()
        .map(|&slot| fleet.state(slot))
        .filter(|state| decision.demand.fits(state))
        .map(|state| (state.load(), state.capacity()))
        .min_by(|a, b| ((a.0 as u128) * b.1 as u128).cmp(&((b.0 as u128) * a.1 as u128)))
}

/// Routes `template` (its `candidates` are ignored) to the best model group and,
/// inside it, to a replica chosen by the router's strategy.
pub fn route_joint<R: Rng + ?Sized>(
    router: &Router,
    models: &[ModelChoice<'_>],
    template: &Decision<'_>,
    tolerance: f64,
    rng: &mut R,
) -> Result<Option<JointChoice>> {
    validate(models, tolerance)?;
    let fleet = router.fleet();
    let mut order: Vec<usize> = (0..models.len()).collect();
    order.sort_by(|&a, &b| models[b].score.total_cmp(&models[a].score));
    let mut start = 0;
    while start < order.len() {
        let top = models[order[start]].score;
        let end = order[start..]
            .iter()
            .position(|&m| models[m].score < top - tolerance)
            .map_or(order.len(), |offset| start + offset);
        // Within the group of equally good models, the roomiest pool first.
        let mut group: Vec<(usize, (u64, u64))> = order[start..end]
            .iter()
            .filter_map(|&m| best_room(fleet, template, models[m].replicas).map(|room| (m, room)))
            .collect();
        group.sort_by(|a, b| {
            ((a.1 .0 as u128) * b.1 .1 as u128).cmp(&((b.1 .0 as u128) * a.1 .1 as u128))
        });
        for (model, _) in group {
            let decision = Decision {
                candidates: Some(models[model].replicas),
                ..*template
            };
            if let Some(slot) = router.route_slot(&decision, rng) {
                return Ok(Some(JointChoice { model, slot }));
            }
        }
        start = end;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Accelerator;
    use crate::router::RouterOptions;
    use crate::strategy::Strategy;
    use rand::{rngs::SmallRng, SeedableRng};

    fn router() -> Router {
        let router = Router::with_options(
            Strategy::from_name("p2c", None, None).unwrap(),
            RouterOptions {
                seed: Some(1),
                priority_reserve: 0.0,
            },
        )
        .unwrap();
        // Model A ("cheap"): replica 0 only. Model B: replicas 1 and 2.
        for id in 0..3 {
            router.add_accelerator(Accelerator::new(id, 4)).unwrap();
        }
        router
    }

    #[test]
    fn equal_models_go_by_room_not_by_list_order() {
        let router = router();
        let fleet = router.fleet();
        let a = Candidates::from_ids(fleet, [0]).unwrap();
        let b = Candidates::from_ids(fleet, [1, 2]).unwrap();
        fleet.state(0).store_load(3); // model A's only replica is nearly saturated
        let models = [
            ModelChoice {
                score: 1.0,
                replicas: &a,
            },
            ModelChoice {
                score: 1.0,
                replicas: &b,
            },
        ];
        let template = Decision::new(router.demand(1, 1).unwrap());
        let mut rng = SmallRng::seed_from_u64(1);
        let choice = route_joint(&router, &models, &template, 0.0, &mut rng)
            .unwrap()
            .unwrap();
        assert_eq!(choice.model, 1);
        assert!(choice.slot == 1 || choice.slot == 2);
    }

    #[test]
    fn a_better_model_wins_while_it_has_room_then_the_next_group() {
        let router = router();
        let fleet = router.fleet();
        let a = Candidates::from_ids(fleet, [0]).unwrap();
        let b = Candidates::from_ids(fleet, [1, 2]).unwrap();
        let models = [
            ModelChoice {
                score: 0.5,
                replicas: &b,
            },
            ModelChoice {
                score: 0.9,
                replicas: &a,
            },
        ];
        let template = Decision::new(router.demand(1, 1).unwrap());
        let mut rng = SmallRng::seed_from_u64(2);
        let picks: Vec<usize> = (0..6)
            .map(|_| {
                route_joint(&router, &models, &template, 0.1, &mut rng)
                    .unwrap()
                    .unwrap()
                    .model
            })
            .collect();
        assert_eq!(picks, vec![1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn nothing_fits_and_bad_input() {
        let router = router();
        let fleet = router.fleet();
        let a = Candidates::from_ids(fleet, [0]).unwrap();
        fleet.state(0).store_load(4);
        let template = Decision::new(router.demand(1, 1).unwrap());
        let mut rng = SmallRng::seed_from_u64(3);
        let full = [ModelChoice {
            score: 1.0,
            replicas: &a,
        }];
        assert_eq!(
            route_joint(&router, &full, &template, 0.0, &mut rng).unwrap(),
            None
        );
        let nan = [ModelChoice {
            score: f64::NAN,
            replicas: &a,
        }];
        assert!(route_joint(&router, &nan, &template, 0.0, &mut rng).is_err());
        assert!(route_joint(&router, &full, &template, -1.0, &mut rng).is_err());
    }
}
