//! Token bucket bindings.
