//! The shared-prefix benchmark end to end, small enough for debug mode: cache-aware
//! routing finds the replicas' prefix caches far more often than cache-blind
//! strategies, and one seed gives one result.

use fleetroute::sim::prefix::{run, PrefixReport, PrefixSimConfig};

fn small(seed: u64) -> PrefixSimConfig {
    PrefixSimConfig {
        replicas: 8,
        tenants: 60,
        requests: 2_000,
        seed,
        strategies: vec![
            "random".into(),
            "round_robin".into(),
            "p2c".into(),
            "cache_aware".into(),
        ],
        ..PrefixSimConfig::default()
    }
}

/// A report without its wall-clock fields.
fn simulated(r: &PrefixReport) -> PrefixReport {
    PrefixReport {
        decision_ns: 0.0,
        decision_cost_vs_p2c: None,
        wall_seconds: 0.0,
        ..r.clone()
    }
}

fn by_name<'a>(reports: &'a [PrefixReport], name: &str) -> &'a PrefixReport {
    reports.iter().find(|r| r.strategy == name).unwrap()
}

#[test]
fn cache_aware_hits_far_more_often_than_cache_blind_routing() {
    let reports = run(&small(42), &mut |_, _, _| {}).unwrap();
    assert_eq!(reports.len(), 4);
    let aware = by_name(&reports, "cache_aware");
    for blind in ["random", "round_robin"] {
        let blind = by_name(&reports, blind);
        assert!(
            aware.cache_hit_rate > blind.cache_hit_rate + 0.2,
            "cache_aware {:.3} vs {} {:.3}",
            aware.cache_hit_rate,
            blind.strategy,
            blind.cache_hit_rate
        );
        assert!(aware.mean_ttft_s < blind.mean_ttft_s || blind.strategy == "round_robin");
    }
    for r in &reports {
        assert_eq!(r.measured, 1_800, "{r:?}");
        assert_eq!(r.completed + r.rejected, r.measured);
        assert!(r.cache_hit_rate > 0.0 && r.cache_hit_rate < 2_000.0 / 2_100.0);
        assert!(r.p90_ttft_s >= r.mean_ttft_s * 0.5 && r.p99_ttft_s >= r.p90_ttft_s);
        assert!(r.mean_e2e_s > 4.0, "decode alone is 4 s");
        assert!(r.throughput > 0.0 && r.utilisation > 0.3 && r.utilisation <= 1.0);
        assert!(r.decision_ns > 0.0 && r.decision_cost_vs_p2c.is_some());
    }
    assert_eq!(by_name(&reports, "p2c").decision_cost_vs_p2c, Some(1.0));
}

#[test]
fn one_seed_gives_one_result() {
    let small = |seed| PrefixSimConfig {
        requests: 600,
        strategies: vec!["p2c".into(), "cache_aware".into()],
        ..small(seed)
    };
    let first: Vec<_> = run(&small(7), &mut |_, _, _| {})
        .unwrap()
        .iter()
        .map(simulated)
        .collect();
    let again: Vec<_> = run(&small(7), &mut |_, _, _| {})
        .unwrap()
        .iter()
        .map(simulated)
        .collect();
    assert_eq!(first, again);
    let other: Vec<_> = run(&small(8), &mut |_, _, _| {})
        .unwrap()
        .iter()
        .map(simulated)
        .collect();
    assert_ne!(first, other);
}
