//! fleetroute: decides, for every AI inference request, which accelerator, model
//! server or provider it goes to.
//!
//! The core keeps the fleet's live load in lock-free atomics ([`fleet::Fleet`]) and
//! picks a target with one of the [`strategy`] implementations, each of which checks
//! and increments capacity in a single atomic step. [`hashing`] holds the consistent
//! hashing building blocks, [`limiter`] the GCRA token buckets, [`sim`] the
//! discrete-event simulation behind `cargo run --release`.
//!
//! The Python bindings live in `src/python/` behind the `python` cargo feature; nothing
//! else in the crate knows about Python.

pub mod error;
pub mod hashing;
pub mod limiter;

pub use error::{Result, RouterError};
pub mod accelerator;
pub mod arena;
pub mod demand;
pub mod fleet;
pub mod joint;
pub mod latency_estimate;
pub mod min_tree;
pub mod prefetch;
pub mod prefix;
pub mod request;
pub mod router;
pub mod sim;
pub mod strategies;
pub mod strategy;

#[cfg(feature = "python")]
mod python;

pub use accelerator::Accelerator;
pub use demand::{Candidates, Decision, Demand};
pub use fleet::{Fleet, Slot};
pub use request::Request;
pub use router::{Router, RouterOptions};
pub use strategy::Strategy;
