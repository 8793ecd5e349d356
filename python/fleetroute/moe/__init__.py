"""Mixture-of-experts gating in JAX."""
