//! Simulation bindings.
