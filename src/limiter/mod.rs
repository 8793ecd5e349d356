//! GCRA token buckets.
