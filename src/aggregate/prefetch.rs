//! The one `unsafe` of the crate: a cache prefetch hint.
//!
//! The event fold is bound by cache misses: one on the unit-id table and one on the unit's
//! accumulator row per event (ARCHITECTURE.md, "Where the time goes"). Asking for those lines
//! a few rows ahead lets the misses of several rows overlap instead of queueing behind each
//! other in the CPU's reorder buffer. std exposes the hint only as an intrinsic, and calling an
//! intrinsic is `unsafe` in Rust whatever it does.
#![allow(unsafe_code)]

/// Asks the CPU to load the cache line holding `value` into every cache level. A hint only: it
/// changes no value, and on other architectures it does nothing.
#[inline(always)]
pub(super) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` reads no memory architecturally and cannot fault, whatever the
    // address (here a live reference's); SSE, which it needs, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
