//! A global allocator that counts live heap bytes and their peak, for the benches' memory
//! tables. Every `alloc`/`dealloc`/`realloc` adds or subtracts its size. It also counts the
//! live blocks of one watched size and their peak ([`watch_blocks_of`]): a bench whose state
//! holds a buffer of an unusual size counts the state's copies alive at once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// The block size whose live blocks are counted (0: none).
static WATCHED: AtomicUsize = AtomicUsize::new(0);
static WATCHED_LIVE: AtomicIsize = AtomicIsize::new(0);
static WATCHED_PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes as isize, Ordering::Relaxed) + bytes as isize;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
    if bytes == WATCHED.load(Ordering::Relaxed) {
        let blocks = WATCHED_LIVE.fetch_add(1, Ordering::Relaxed) + 1;
        WATCHED_PEAK.fetch_max(blocks, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes as isize, Ordering::Relaxed);
    if bytes == WATCHED.load(Ordering::Relaxed) {
        WATCHED_LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts from now on the live blocks of `bytes` bytes (blocks of that size allocated before
/// are not counted, so call it before any exists).
#[allow(dead_code)] // not every bench uses it
pub fn watch_blocks_of(bytes: usize) {
    WATCHED_LIVE.store(0, Ordering::SeqCst);
    WATCHED_PEAK.store(0, Ordering::SeqCst);
    WATCHED.store(bytes, Ordering::SeqCst);
}

/// The most watched blocks alive at once while `f` runs, above those alive when it began.
#[allow(dead_code)] // not every bench uses it
pub fn peak_blocks_during<T>(f: impl FnOnce() -> T) -> (isize, T) {
    let base = WATCHED_LIVE.load(Ordering::SeqCst);
    WATCHED_PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (WATCHED_PEAK.load(Ordering::SeqCst) - base, out)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap bytes `f` leaves behind, and what it returns.
#[allow(dead_code)] // not every bench uses it
pub fn held_by<T>(f: impl FnOnce() -> T) -> (isize, T) {
    let base = LIVE.load(Ordering::SeqCst);
    let out = f();
    (LIVE.load(Ordering::SeqCst) - base, out)
}

/// Peak heap bytes above the current level while `f` runs.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    (peak.max(0) as usize, out)
}
