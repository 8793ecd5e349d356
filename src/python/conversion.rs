//! Conversions between Python values and core types, and the one error mapping.

use numpy::{
    AllowTypeChange, PyArrayDescrMethods, PyArrayLike1, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::error::RouterError;
use crate::hashing;

/// `UnknownId` becomes `KeyError`, everything else `ValueError`; the message is the
/// core's, which names the offending value.
pub fn to_py_err(err: RouterError) -> PyErr {
    if err.is_missing_key() {
        PyKeyError::new_err(err.to_string())
    } else {
        PyValueError::new_err(err.to_string())
    }
}

/// Extension trait: `result.py()?` maps a core error to its Python exception.
pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, RouterError> {
    #[inline]
    fn py(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}

/// A non-negative integer argument, with a `ValueError` naming `what` otherwise.
pub fn non_negative(value: i64, what: &'static str) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| {
        to_py_err(RouterError::invalid(
            what,
            format!("{what} must be >= 0 (got {value})"),
        ))
    })
}

/// An optional integer in `[0, 2^64)` (e.g. a seed), with a `ValueError` naming
/// `what` for a negative, too large or non-integer value.
pub fn optional_u64(value: Option<&Bound<'_, PyAny>>, what: &'static str) -> PyResult<Option<u64>> {
    value
        .map(|v| {
            v.extract::<u64>().map_err(|_| {
                to_py_err(RouterError::invalid(
                    what,
                    format!("{what} must be an integer in [0, 2**64) (got {v})"),
                ))
            })
        })
        .transpose()
}

/// An integer array (numpy array of an integer dtype, or a sequence of ints). Float
/// arrays are refused rather than truncated.
pub fn int_array(value: &Bound<'_, PyAny>, what: &'static str) -> PyResult<Vec<i64>> {
    let refuse = |got: String| {
        to_py_err(RouterError::invalid(
            what,
            format!("{what} must hold integers (got {got})"),
        ))
    };
    if let Ok(array) = value.cast::<PyUntypedArray>() {
        let dtype = array.dtype();
        if !matches!(dtype.kind(), b'i' | b'u' | b'b') {
            return Err(refuse(format!("a {dtype} array")));
        }
        let array: PyArrayLike1<'_, i64, AllowTypeChange> = value.extract()?;
        return Ok(array.as_slice()?.to_vec());
    }
    value
        .extract::<Vec<i64>>()
        .map_err(|_| refuse(value.get_type().to_string()))
}

/// A routing key: an int is used as is, a str or bytes is hashed (xxh3).
pub fn key_from_py(key: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(hashing::hash_bytes(s.to_str()?.as_bytes()));
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(hashing::hash_bytes(b.as_bytes()));
    }
    if let Ok(v) = key.extract::<u64>() {
        return Ok(v);
    }
    if let Ok(v) = key.extract::<i64>() {
        return Ok(v as u64);
    }
    Err(PyValueError::new_err(format!(
        "invalid key: expected int in [-2**63, 2**64), str or bytes (got {})",
        key.repr()?
    )))
}

/// Seconds (a caller's clock) to whole nanoseconds.
pub fn seconds_to_ns(now: f64) -> PyResult<u64> {
    if !now.is_finite() || now < 0.0 {
        return Err(to_py_err(RouterError::invalid(
            "now",
            format!("now must be a finite number of seconds >= 0 (got {now})"),
        )));
    }
    Ok((now * 1e9).round() as u64)
}

/// `jump_hash(key, buckets)`: Lamping & Veach's jump consistent hash.
#[pyfunction]
pub fn jump_hash(key: &Bound<'_, PyAny>, buckets: i64) -> PyResult<u32> {
    let buckets = non_negative(buckets, "buckets")?;
    let buckets = u32::try_from(buckets).map_err(|_| {
        to_py_err(RouterError::invalid(
            "buckets",
            format!("buckets must be < 2^32 (got {buckets})"),
        ))
    })?;
    hashing::jump_hash(key_from_py(key)?, buckets).py()
}

/// `hash_key(key)`: the 64-bit key the router uses for `key` (int kept, str hashed).
#[pyfunction]
pub fn hash_key(key: &Bound<'_, PyAny>) -> PyResult<u64> {
    key_from_py(key)
}
