//! Measures `route_batch` with p2c on 10,000 accelerators (1,000,000 decisions per
//! batch): `cargo run --release --example p2c_batch_rate`.

use fleetroute::{Accelerator, Router, RouterOptions, Strategy};
use std::time::Instant;

fn main() {
    let router = Router::with_options(
        Strategy::from_name("p2c", None, None).expect("known strategy"),
        RouterOptions {
            seed: Some(1),
            priority_reserve: 0.1,
        },
    )
    .expect("valid options");
    let fleet: Vec<_> = (0..10_000).map(|id| Accelerator::new(id, 1000)).collect();
    router.add_accelerators(&fleet).expect("fresh ids");
    let costs = vec![1u64; 1_000_000];
    let mut out = vec![0i64; costs.len()];
    let mut rates = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        router
            .route_batch(&costs, None, 0, &mut out)
            .expect("valid batch");
        rates.push(costs.len() as f64 / start.elapsed().as_secs_f64());
        router.release_batch(&out, &costs).expect("routed ids");
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "p2c route_batch: median {:.1} M decisions/s, best {:.1} M/s",
        rates[rates.len() / 2] / 1e6,
        rates[rates.len() - 1] / 1e6
    );
}
