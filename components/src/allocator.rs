//! Tuning of the C allocator (glibc's malloc, which libjpeg and Rust share) for renders.
//!
//! A render allocates and frees a few blocks of hundreds of KiB: the source bytes, the
//! pixels, libjpeg's coefficient buffers. With glibc's defaults such blocks go back to the
//! kernel once freed (mmap for large blocks, trimming of the heap's top), so the next
//! render faults every page in again: about 370 page faults and 1.3 ms of system time for
//! a 500 px thumbnail of a 2000 px photo, a sixth of its cost. Fixed thresholds keep that
//! much memory in the heap for the next render instead; blocks beyond them (very large
//! images, whose decode dwarfs the faults) are still returned at once, which bounds what an
//! idle daemon holds.

/// Blocks up to this size come from the heap, and a heap keeps this much free memory.
const RETAINED_BYTES: i32 = 4 << 20;

/// Applies the thresholds; call before the threads start. Without glibc this does nothing.
pub fn keep_render_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; both are valid for glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, RETAINED_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, RETAINED_BYTES);
    }
}
