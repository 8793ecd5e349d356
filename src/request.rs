//! A routing request as the seed API spells it: `Request::new(id, cost, priority)`.

/// One inference request to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request {
    /// Caller's request id; also the affinity key for consistent-hash strategies.
    pub id: u64,
    /// Load units the request holds while in flight (>= 1).
    pub cost: u64,
    /// 0 = normal, >= 1 = high priority (may use the reserved headroom).
    pub priority: u32,
}

impl Request {
    /// A request of `cost` units at `priority`.
    pub fn new(id: u64, cost: u64, priority: u32) -> Self {
        Request { id, cost, priority }
    }
}
