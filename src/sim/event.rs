//! The event queue: a binary min-heap over a total order on (time, kind, sequence).
//!
//! Times are [`SimTime`]s, finite by construction, so the order never meets a NaN.
//! Events at the same instant are handled in [`EventKind`] order (completions first,
//! so a slot freed at `t` can serve a request arriving at `t`), then in the order
//! they were scheduled, which makes every run reproducible.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::fleet::Slot;

/// A point in simulated time, in seconds. Never NaN or infinite; ordered (and
/// compared) by `f64::total_cmp`.
#[derive(Debug, Clone, Copy)]
pub struct SimTime(f64);

impl SimTime {
    /// The start of the simulation.
    pub const ZERO: SimTime = SimTime(0.0);

    /// A time of `seconds`. Panics on NaN or an infinity: an event at such a time
    /// would be a bug in the simulation, never a property of the input.
    #[inline]
    pub fn new(seconds: f64) -> Self {
        assert!(
            seconds.is_finite(),
            "simulated time must be finite (got {seconds})"
        );
        SimTime(seconds)
    }

    /// Seconds since the start.
    #[inline]
    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl PartialEq for SimTime {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SimTime {}

impl Ord for SimTime {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl PartialOrd for SimTime {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What happens at an event, in the order same-time events are handled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    /// A request finishes service on `slot`. It arrived at `arrived` and counts in
    /// the statistics if `measured`.
    Completion {
        /// The accelerator.
        slot: Slot,
        /// Arrival time of the finishing request, seconds.
        arrived: f64,
        /// Whether it arrived after the warm-up.
        measured: bool,
    },
    /// The stale view's loads are refreshed from the true loads.
    Refresh,
    /// The fleet's load balance is sampled.
    Sample,
    /// The next request of the workload arrives.
    Arrival,
}

impl EventKind {
    #[inline]
    fn rank(&self) -> u8 {
        match self {
            EventKind::Completion { .. } => 0,
            EventKind::Refresh => 1,
            EventKind::Sample => 2,
            EventKind::Arrival => 3,
        }
    }
}

/// A scheduled event. Events are equal only if they are the same scheduling.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// When it happens.
    pub time: SimTime,
    /// What happens.
    pub kind: EventKind,
    seq: u64,
}

impl PartialEq for Event {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl Ord for Event {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.time
            .cmp(&other.time)
            .then_with(|| self.kind.rank().cmp(&other.kind.rank()))
            .then_with(|| self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Event {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pending events, earliest first.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Reverse<Event>>,
    seq: u64,
}

impl EventQueue {
    /// An empty queue with room for `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(capacity),
            seq: 0,
        }
    }

    /// Schedules `kind` at `time`.
    #[inline]
    pub fn push(&mut self, time: SimTime, kind: EventKind) {
        self.seq += 1;
        self.heap.push(Reverse(Event {
            time,
            kind,
            seq: self.seq,
        }));
    }

    /// Takes the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<Event> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_kind_then_insertion() {
        let mut q = EventQueue::default();
        let t = |s| SimTime::new(s);
        q.push(t(2.0), EventKind::Arrival);
        q.push(t(1.0), EventKind::Sample);
        q.push(t(1.0), EventKind::Arrival);
        let done = |slot| EventKind::Completion {
            slot,
            arrived: 0.0,
            measured: true,
        };
        q.push(t(1.0), done(7));
        q.push(t(1.0), done(3));
        q.push(t(-0.0), EventKind::Refresh);
        let order: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|e| (e.time.seconds(), e.kind))
            .collect();
        assert_eq!(
            order,
            vec![
                (-0.0, EventKind::Refresh),
                (1.0, done(7)),
                (1.0, done(3)),
                (1.0, EventKind::Sample),
                (1.0, EventKind::Arrival),
                (2.0, EventKind::Arrival),
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    #[should_panic(expected = "finite")]
    fn nan_time_is_refused() {
        SimTime::new(f64::NAN);
    }
}
