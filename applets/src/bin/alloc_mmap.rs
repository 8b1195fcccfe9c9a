//! A global allocator backed directly by anonymous mmap: every allocation
//! is its own mapping. Only the zstd decoder (a few large blocks per
//! module) and `modinfo` (a few dozen per module) allocate, so simplicity
//! beats a general-purpose allocator here.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};
use rustix::mm::{MapFlags, MremapFlags, ProtFlags};

const PAGE: usize = 4096;

/// The allocator.
pub struct MmapAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// How many allocations this process made (reported with
/// `EARLYMOD_ALLOC_STATS=1`; the loading path without userspace
/// decompression makes none).
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn round(size: usize) -> usize {
    size.max(1).div_ceil(PAGE) * PAGE
}

// SAFETY: mmap returns page-aligned, zeroed, exclusive memory; alignments
// above a page are refused (null); dealloc unmaps exactly what alloc mapped
// (the same rounded size, from the layout).
unsafe impl GlobalAlloc for MmapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > PAGE {
            return core::ptr::null_mut();
        }
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: a fresh private anonymous mapping.
        match unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                round(layout.size()),
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        } {
            Ok(p) => p.cast(),
            Err(_) => core::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as alloc; fresh anonymous mappings are already zeroed.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout's rounded size.
        let _ = unsafe { rustix::mm::munmap(ptr.cast(), round(layout.size())) };
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: growing or shrinking our own mapping; the kernel moves it
        // when needed and keeps its contents.
        match unsafe {
            rustix::mm::mremap(
                ptr.cast(),
                round(layout.size()),
                round(new_size),
                MremapFlags::MAYMOVE,
            )
        } {
            Ok(p) => p.cast(),
            Err(_) => core::ptr::null_mut(),
        }
    }
}
