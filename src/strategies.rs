//! Seed 003's module paths (`strategies::p2c::PowerOfTwoChoices`, ...), so Rust code
//! written against `intelligent_routing` compiles with only the crate name changed.
//! The implementations live in [`crate::strategy`].

/// `strategies::p2c::PowerOfTwoChoices`.
pub mod p2c {
    pub use crate::strategy::PowerOfTwoChoices;
}

/// `strategies::round_robin::RoundRobin`.
pub mod round_robin {
    pub use crate::strategy::RoundRobin;
}

/// `strategies::least_connections::LeastConnections`.
pub mod least_connections {
    pub use crate::strategy::LeastConnections;
}
