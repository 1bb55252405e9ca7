//! Peak stack use by paint-and-check: fill the free stack below the caller with a pattern,
//! run the closure, then find the lowest word that no longer holds the pattern.

use core::ptr::{addr_of, read_volatile, write_volatile};

/// The paint pattern (a word the scan is unlikely to leave behind by chance).
const PAINT: u32 = 0xA5C3_5A3C;
/// Bytes painted below the stack pointer (the measured use must stay below this).
const WINDOW: usize = 64 * 1024;

extern "C" {
    /// End of `.bss`/`.data`/`.uninit` (cortex-m-rt's link.x): the stack may grow down to here.
    static __sheap: u32;
}

/// What [`peak`] measured.
pub struct Peak {
    /// Bytes of stack below the caller's frame that the closure touched.
    pub bytes: usize,
    /// The whole painted window was overwritten: the true peak may be higher.
    pub overflow: bool,
}

/// Runs `f` and measures the stack it used (its own frame and everything it calls).
#[inline(never)]
pub fn peak(f: &mut dyn FnMut()) -> Peak {
    let sp = cortex_m::register::msp::read() as usize;
    // Only the address of the linker symbol is taken, never its value.
    let heap_start = addr_of!(__sheap) as usize;
    let bottom = (sp.saturating_sub(WINDOW).max(heap_start) + 3) & !3;
    // This function's own frame is above `sp`; leave a few words of margin below it.
    let top = (sp - 16) & !3;
    let mut a = bottom;
    while a < top {
        // SAFETY: `[bottom, top)` lies between the end of the statics (`__sheap`) and the current
        // stack pointer: no live object is there (no interrupts are enabled, nothing else runs),
        // so writing it aliases nothing. The address is 4-aligned.
        unsafe { write_volatile(a as *mut u32, PAINT) };
        a += 4;
    }
    // Through an opaque reference, so the closure (and the scan) cannot be inlined into this
    // frame, above the measured region.
    core::hint::black_box(&mut *f)();
    let mut low = bottom;
    // SAFETY: the same words as above, read back; 4-aligned, inside RAM.
    while low < top && unsafe { read_volatile(low as *const u32) } == PAINT {
        low += 4;
    }
    Peak {
        bytes: sp - low,
        overflow: low == bottom,
    }
}
