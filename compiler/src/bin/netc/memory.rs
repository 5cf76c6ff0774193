//! Running out of memory is an error like any other: `netc` says so on stderr and exits with 2
//! (the code for errors it cannot work around), instead of Rust's default of printing
//! "memory allocation failed" and aborting (exit 134, SIGABRT), which a CI script reading
//! `0/1/2` cannot tell from a crash.
//!
//! The global allocator is the system's, wrapped: an allocation the system refuses (under
//! `ulimit -v`, a cgroup without overcommit, or a size no machine has) ends the process there,
//! with one `write(2)` of a static message and `_exit(2)`; nothing else runs, since nothing may
//! allocate any more. Output already written stays written (files are replaced atomically, so a
//! half-written output file is never left). A kernel OOM kill (SIGKILL) cannot be caught by any
//! process; the analyses keep their memory bounded so that it does not come to that (see
//! docs/performance.md).

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, exiting with code 2 and a message when it returns null.
#[derive(Debug)]
pub struct ExitOnExhaustion;

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the wrapper only looks at the returned pointer.
unsafe impl GlobalAlloc for ExitOnExhaustion {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout contract is passed on as is.
        checked(unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        checked(unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        checked(unsafe { System.realloc(ptr, layout, new_size) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this wrapper with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn checked(ptr: *mut u8) -> *mut u8 {
    if ptr.is_null() {
        exhausted();
    }
    ptr
}

/// The message, then exit 2; allocates nothing.
fn exhausted() -> ! {
    const MESSAGE: &[u8] = b"error: out of memory: netc could not allocate more memory and stopped; \
nothing was left half-written. Give it more memory (ulimit -v, the container's limit), or ask for \
less at once (`netc matrix --format csv|json` streams; the table is meant for people, not for \
thousands of pods)\n";
    // SAFETY: writing a static buffer to fd 2 and exiting without running destructors or atexit
    // handlers (which could allocate) are async-signal-safe and valid in any state.
    unsafe {
        libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::_exit(2)
    }
}
