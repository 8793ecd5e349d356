//! `TokenBucket` and `KeyedTokenBucket`: the GCRA limiters, with an optional explicit
//! clock (`now`, seconds) so callers and tests control time.

use pyo3::prelude::*;

use super::conversion::{key_from_py, non_negative, seconds_to_ns, IntoPyResult};
use crate::limiter::{Acquire, KeyedTokenBucket, TokenBucket};

fn tokens(n: i64) -> PyResult<u32> {
    let n = non_negative(n, "n")?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn retry_after(acquire: Acquire) -> f64 {
    if acquire.is_granted() {
        0.0
    } else {
        acquire.retry_after_secs()
    }
}

/// A lock-free GCRA token bucket: `rate_per_s` tokens per second, up to `burst` at once.
#[pyclass(name = "TokenBucket", module = "fleetroute._native", frozen)]
pub struct PyTokenBucket {
    inner: TokenBucket,
}

impl PyTokenBucket {
    fn acquire(&self, n: i64, now: Option<f64>) -> PyResult<Acquire> {
        let n = tokens(n)?;
        match now {
            Some(now) => self.inner.try_acquire_at(n, seconds_to_ns(now)?).py(),
            None => self.inner.try_acquire(n).py(),
        }
    }
}

#[pymethods]
impl PyTokenBucket {
    #[new]
    fn new(rate_per_s: f64, burst: f64) -> PyResult<Self> {
        Ok(PyTokenBucket {
            inner: TokenBucket::new(rate_per_s, burst).py()?,
        })
    }

    /// Takes `n` tokens if available; `now` is the caller's clock in seconds.
    #[pyo3(signature = (n = 1, now = None))]
    fn try_acquire(&self, n: i64, now: Option<f64>) -> PyResult<bool> {
        Ok(self.acquire(n, now)?.is_granted())
    }

    /// Like `try_acquire`, but returns the seconds to wait before `n` tokens would be
    /// granted: 0.0 means granted now (and taken).
    #[pyo3(signature = (n = 1, now = None))]
    fn try_acquire_retry_after(&self, n: i64, now: Option<f64>) -> PyResult<f64> {
        Ok(retry_after(self.acquire(n, now)?))
    }

    /// Gives back `n` tokens of an earlier grant that went unused.
    #[pyo3(signature = (n = 1))]
    fn refund(&self, n: i64) -> PyResult<()> {
        self.inner.refund(tokens(n)?).py()
    }

    #[getter]
    fn rate_per_s(&self) -> f64 {
        self.inner.rate_per_s()
    }

    #[getter]
    fn burst(&self) -> f64 {
        self.inner.burst()
    }

    fn __repr__(&self) -> String {
        format!(
            "TokenBucket(rate_per_s={:?}, burst={:?})",
            self.inner.rate_per_s(),
            self.inner.burst()
        )
    }
}

/// One GCRA bucket per key (int, str or bytes), all with the same rate and burst.
#[pyclass(name = "KeyedTokenBucket", module = "fleetroute._native", frozen)]
pub struct PyKeyedTokenBucket {
    inner: KeyedTokenBucket,
}

impl PyKeyedTokenBucket {
    fn acquire(&self, key: &Bound<'_, PyAny>, n: i64, now: Option<f64>) -> PyResult<Acquire> {
        let key = key_from_py(key)?;
        let n = tokens(n)?;
        match now {
            Some(now) => self.inner.try_acquire_at(key, n, seconds_to_ns(now)?).py(),
            None => self.inner.try_acquire(key, n).py(),
        }
    }
}

#[pymethods]
impl PyKeyedTokenBucket {
    #[new]
    fn new(rate_per_s: f64, burst: f64) -> PyResult<Self> {
        Ok(PyKeyedTokenBucket {
            inner: KeyedTokenBucket::new(rate_per_s, burst).py()?,
        })
    }

    /// Takes `n` tokens from `key`'s bucket if available.
    #[pyo3(signature = (key, n = 1, now = None))]
    fn try_acquire(&self, key: &Bound<'_, PyAny>, n: i64, now: Option<f64>) -> PyResult<bool> {
        Ok(self.acquire(key, n, now)?.is_granted())
    }

    /// Seconds to wait before `key` could take `n` tokens; 0.0 means granted now.
    #[pyo3(signature = (key, n = 1, now = None))]
    fn try_acquire_retry_after(
        &self,
        key: &Bound<'_, PyAny>,
        n: i64,
        now: Option<f64>,
    ) -> PyResult<f64> {
        Ok(retry_after(self.acquire(key, n, now)?))
    }

    /// Gives back `n` tokens to `key`'s bucket from an earlier grant that went unused.
    #[pyo3(signature = (key, n = 1))]
    fn refund(&self, key: &Bound<'_, PyAny>, n: i64) -> PyResult<()> {
        self.inner.refund(key_from_py(key)?, tokens(n)?).py()
    }

    /// Drops keys whose bucket is full again (lossless); returns how many.
    #[pyo3(signature = (now = None))]
    fn retain_active(&self, now: Option<f64>) -> PyResult<usize> {
        let now_ns = match now {
            Some(now) => seconds_to_ns(now)?,
            None => self.inner.now_ns(),
        };
        Ok(self.inner.retain_active(now_ns))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "KeyedTokenBucket(rate_per_s={:?}, burst={:?}, keys={})",
            self.inner.rate_per_s(),
            self.inner.burst(),
            self.inner.len()
        )
    }

    #[getter]
    fn rate_per_s(&self) -> f64 {
        self.inner.rate_per_s()
    }

    #[getter]
    fn burst(&self) -> f64 {
        self.inner.burst()
    }
}
