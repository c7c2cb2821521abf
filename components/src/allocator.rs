//! Tuning of the C allocator (glibc's malloc, which libjpeg and Rust share) for renders.
//!
//! A render allocates and frees a few large blocks: the source bytes, the pixels, the
//! coefficients (libjpeg holds a progressive source's for the whole image: about 12 MB for a
//! 2560x1600 4:2:0 photo; `render::progressive`, which reads them when they are reduced, keeps
//! a few MB). With glibc's defaults such blocks go back to the kernel once freed
//! (mmap for large blocks, trimming of the heap's top), so the next render faults every page in
//! again and has the kernel clear it: about 370 page faults and 1.3 ms of system time for a 500
//! px thumbnail of a 2000 px photo, a sixth of its cost. Fixed thresholds keep that memory in
//! the heap for the next render instead, at glibc's largest mmap threshold on 64-bit
//! (HEAP_MAX/2) because a progressive photo's coefficient buffer outgrows smaller ones: at 4
//! MiB a sixth of a progressive 2560 px photo's cost still went to faults, at 32 MiB it costs a
//! fifth less CPU. Blocks beyond it (very large images, whose decode dwarfs the faults) are
//! still returned at once. The price is what an idle daemon keeps: up to this much free memory
//! per heap, about 60 MiB of resident memory with two workers after progressive 2560 px photos
//! (14 MiB with 4 MiB thresholds), far below the unit's MemoryMax.

/// Blocks up to this size come from the heap, and a heap keeps this much free memory.
const RETAINED_BYTES: i32 = 32 << 20;

/// Applies the thresholds; call before the threads start. Without glibc this does nothing.
pub fn keep_render_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; both are valid for glibc.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, RETAINED_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, RETAINED_BYTES);
    }
}
