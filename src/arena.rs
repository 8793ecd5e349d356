//! A segmented, append-only arena: slot-indexed storage whose elements never move.
//!
//! Segment `k` holds `64 << k` elements and is allocated once, the first time a slot
//! in it is reserved, so growing the arena never copies what it holds and a reference
//! to an element stays valid for the arena's life. That is what lets routing threads
//! read per-accelerator state through plain references, without locks, while writers
//! register more accelerators. Reading slot `i` is a leading-zeros count, one atomic
//! load of the segment pointer and an index.

use std::sync::OnceLock;

use crate::error::{Result, RouterError};

const FIRST_SEGMENT_BITS: u32 = 6;
const FIRST_SEGMENT: usize = 1 << FIRST_SEGMENT_BITS;
const SEGMENTS: usize = 26;

/// The most elements an arena can hold.
pub const MAX_SLOTS: usize = FIRST_SEGMENT * ((1 << SEGMENTS) - 1);

/// Segment and offset of `slot`.
#[inline]
fn locate(slot: usize) -> (usize, usize) {
    let shifted = slot + FIRST_SEGMENT;
    let top = (usize::BITS - 1 - shifted.leading_zeros()) as usize;
    let segment = top - FIRST_SEGMENT_BITS as usize;
    (segment, shifted - (1 << top))
}

/// Append-only storage of `T`, each element default-initialised when its segment is
/// first reserved.
pub struct Arena<T> {
    segments: [OnceLock<Box<[T]>>; SEGMENTS],
}

impl<T> std::fmt::Debug for Arena<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl<T: Default> Default for Arena<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default> Arena<T> {
    /// An arena with nothing allocated.
    pub fn new() -> Self {
        Arena {
            segments: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Makes sure `slot` is backed by memory (allocating its segment if needed).
    pub fn reserve(&self, slot: usize) -> Result<()> {
        if slot >= MAX_SLOTS {
            return Err(RouterError::invalid(
                "fleet size",
                format!("the fleet holds at most {MAX_SLOTS} registrations"),
            ));
        }
        let (segment, _) = locate(slot);
        self.segments[segment].get_or_init(|| {
            (0..FIRST_SEGMENT << segment)
                .map(|_| T::default())
                .collect()
        });
        Ok(())
    }
}

impl<T> Arena<T> {
    /// The element in `slot`. Panics if `slot` was never reserved.
    #[inline]
    pub fn get(&self, slot: usize) -> &T {
        let (segment, offset) = locate(slot);
        &self.segments[segment]
            .get()
            .expect("slot index beyond the reserved arena")[offset]
    }

    /// The element in `slot`, or `None` if it was never reserved.
    #[inline]
    pub fn try_get(&self, slot: usize) -> Option<&T> {
        let (segment, offset) = locate(slot);
        self.segments.get(segment)?.get().map(|s| &s[offset])
    }

    /// Bytes held by the allocated segments.
    pub fn bytes(&self) -> usize {
        self.segments
            .iter()
            .filter_map(|s| s.get())
            .map(|s| std::mem::size_of_val(&**s))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_segments_without_gaps() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let mut expected = (0, 0);
        for slot in 0..10_000 {
            assert_eq!(locate(slot), expected);
            expected.1 += 1;
            if expected.1 == FIRST_SEGMENT << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn elements_never_move_as_the_arena_grows() {
        let arena: Arena<u64> = Arena::new();
        arena.reserve(0).unwrap();
        let first = arena.get(0) as *const u64;
        for slot in 0..5_000 {
            arena.reserve(slot).unwrap();
        }
        assert_eq!(arena.get(0) as *const u64, first);
        assert!(arena.try_get(1 << 20).is_none());
        assert!(arena.reserve(MAX_SLOTS).is_err());
        assert!(arena.bytes() < 2 * 8 * 5_000 + 8 * 64);
    }
}
