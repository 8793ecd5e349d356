//! A cache prefetch hint, used by batch routing to overlap the memory latency of the
//! next decisions' accelerators with the current decision.

/// Asks the CPU to bring `value`'s cache line closer. A hint only: no effect on
/// program semantics, and a no-op on targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` has no architectural side effects and cannot fault; the
    // pointer comes from a live reference in any case.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
