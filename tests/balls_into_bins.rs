//! Reference figures from the theory: n balls into n bins (n = 1,000,000).
//!
//! One uniform choice gives a maximum load of about ln n / ln ln n (8–9 at this n in
//! practice); two choices (Azar, Broder, Karlin, Upfal 1999) give ln ln n / ln 2 + O(1),
//! which is 4 at this n. Both are routed through the real strategies.

use fleetroute::{Accelerator, Router, RouterOptions, Strategy};

const N: u64 = 1_000_000;

fn max_load(strategy: &str, seed: u64) -> u64 {
    let router = Router::with_options(
        Strategy::from_name(strategy, None, None).unwrap(),
        RouterOptions {
            seed: Some(seed),
            priority_reserve: 0.0,
        },
    )
    .unwrap();
    let bins: Vec<_> = (0..N).map(|id| Accelerator::new(id, 1_000)).collect();
    router.add_accelerators(&bins).unwrap();
    let costs = vec![1u64; N as usize];
    let mut out = vec![0i64; N as usize];
    router.route_batch(&costs, None, 1, &mut out).unwrap();
    assert!(out.iter().all(|&id| id >= 0));
    router.loads().1.into_iter().max().unwrap()
}

#[test]
fn one_random_choice_gives_about_eight_or_nine() {
    let max = max_load("random", 1);
    assert!((7..=11).contains(&max), "max load {max}");
}

#[test]
fn two_choices_give_about_four() {
    let max = max_load("p2c", 1);
    assert!((3..=5).contains(&max), "max load {max}");
}
