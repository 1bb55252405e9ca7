//! Example firmware: ss2d-core's selective scan on a Cortex-M core, checked against golden
//! cases, under QEMU (`mps2-an386` Cortex-M4F, `mps2-an500` Cortex-M7, `mps2-an505`
//! Cortex-M33). No heap: the inputs are embedded in flash (`include_bytes!` of safetensors
//! files, read in place), the outputs and the scan's scratch live in one `static` buffer set
//! handed out once. For every case it prints the max relative error
//! (`max|out - ref| / max|ref|`), the scratch the shape needs and the scan's peak stack use
//! (paint-and-check), then exits through semihosting with status 0 (all cases pass) or 1.
#![no_std]
#![no_main]

mod st;
mod stack;

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use ss2d_core::{BcLayout, Layout, ScanArgs, ScanShape, ValidShape, Walk};

/// `println!` over semihosting (format arguments may name variables inline).
macro_rules! say {
    ($($t:tt)*) => {
        cortex_m_semihosting::hprintln!("{}", format_args!($($t)*))
    };
}

/// Bytes embedded at 8-byte alignment, so the f32 tensors in them can be borrowed in place.
#[repr(C, align(8))]
pub struct Aligned<B: ?Sized>(pub B);

// `CASES`: the golden files that fit and the generated cases (build.rs).
include!(concat!(env!("OUT_DIR"), "/cases.rs"));

/// Pass bound on `max|out - ref| / max|ref|`: the goldens' README suggests 1e-5 for a float32
/// implementation (their own float32 noise is ~3.5e-7); the crate's contract is 1e-4.
const TOLERANCE: f32 = 1e-5;

/// Capacities of the static buffers (`f32` elements).
const SCRATCH_CAP: usize = 8 * 1024;
const OUT_CAP: usize = 4 * 1024;
const STATE_CAP: usize = 1024;

/// The firmware's only mutable memory besides the stack: scan scratch and outputs.
struct Buffers {
    scratch: [f32; SCRATCH_CAP],
    out: [f32; OUT_CAP],
    state: [f32; STATE_CAP],
}

struct Shared(UnsafeCell<Buffers>);
// SAFETY: the cell is only reached through `take_buffers`, which hands out one `&mut` ever.
unsafe impl Sync for Shared {}

static BUFFERS: Shared = Shared(UnsafeCell::new(Buffers {
    scratch: [0.0; SCRATCH_CAP],
    out: [0.0; OUT_CAP],
    state: [0.0; STATE_CAP],
}));
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The buffers, the first time only (a safe wrapper around the `static`).
fn take_buffers() -> Option<&'static mut Buffers> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: `swap` returned `false`, which happens exactly once, so this is the only
    // reference to BUFFERS ever created.
    Some(unsafe { &mut *BUFFERS.0.get() })
}

/// Entered right before each scan (a no-op the instruction counter of .ci/embedded.sh finds
/// by symbol).
#[no_mangle]
#[inline(never)]
pub extern "C" fn ss2d_mark_begin() {
    cortex_m::asm::nop();
}

/// Entered right after each scan (two `nop`s: a body unlike `ss2d_mark_begin`'s, so the
/// linker cannot fold the two markers into one address).
#[no_mangle]
#[inline(never)]
pub extern "C" fn ss2d_mark_end() {
    cortex_m::asm::nop();
    cortex_m::asm::nop();
}

/// One case, read from its file.
struct Case<'a> {
    shape: ScanShape,
    walk: Walk,
    args: ScanArgs<'a>,
    want_out: &'a [f32],
    want_state: Option<&'a [f32]>,
}

fn meta<'a>(f: &st::File<'a>, key: &'static str) -> Result<&'a str, st::Error> {
    f.meta(key)?.ok_or(st::Error(key))
}

fn meta_usize(f: &st::File<'_>, key: &'static str) -> Result<usize, st::Error> {
    meta(f, key)?.parse().map_err(|_| st::Error(key))
}

fn values<'a>(f: &st::File<'a>, name: &'static str) -> Result<Option<&'a [f32]>, st::Error> {
    f.tensor(name)
}

fn required<'a>(f: &st::File<'a>, name: &'static str) -> Result<&'a [f32], st::Error> {
    values(f, name)?.ok_or(st::Error(name))
}

fn load(bytes: &[u8]) -> Result<Case<'_>, st::Error> {
    let f = st::File::parse(bytes)?;
    let groups = meta_usize(&f, "G")?;
    let bc = |key| -> Result<BcLayout, st::Error> {
        match meta(&f, key)? {
            "DN" => Ok(BcLayout::Constant),
            "BNL" => Ok(BcLayout::Grouped(1)),
            "BGNL" => Ok(BcLayout::Grouped(groups)),
            _ => Err(st::Error(key)),
        }
    };
    // Keys of the generated cases; the goldens are all channel-first, forward.
    let layout = match f.meta("layout")? {
        None | Some("BDL") => Layout::ChannelFirst,
        Some("BLD") => Layout::ChannelLast,
        Some(_) => return Err(st::Error("layout")),
    };
    let seqlen = meta_usize(&f, "L")?;
    let walk = match f.meta("walk")? {
        None | Some("forward") => Walk::forward(seqlen),
        Some("reverse") => Walk::reverse(seqlen),
        Some(_) => return Err(st::Error("walk")),
    };
    let shape = ScanShape {
        batch: meta_usize(&f, "Bsz")?,
        dim: meta_usize(&f, "D")?,
        seqlen,
        dstate: meta_usize(&f, "N")?,
        b: bc("B_layout")?,
        c: bc("C_layout")?,
        layout,
    };
    let args = ScanArgs {
        u: required(&f, "u")?,
        delta: required(&f, "delta")?,
        a: required(&f, "A")?,
        b: required(&f, "B")?,
        c: required(&f, "C")?,
        d_skip: values(&f, "D")?,
        z: values(&f, "z")?,
        delta_bias: values(&f, "delta_bias")?,
        delta_softplus: match meta(&f, "delta_softplus")? {
            "true" => true,
            "false" => false,
            _ => return Err(st::Error("delta_softplus")),
        },
        initial_state: values(&f, "initial_state")?,
    };
    Ok(Case {
        shape,
        walk,
        args,
        want_out: required(&f, "out")?,
        want_state: values(&f, "last_state")?,
    })
}

/// `max|got - want| / max|want|`; NaN when the NaN patterns differ (NaN fails every bound).
fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    if got.len() != want.len() {
        return f32::NAN;
    }
    let (mut err, mut scale, mut nan) = (0.0f32, 0.0f32, false);
    for (&g, &w) in got.iter().zip(want) {
        if g.is_nan() || w.is_nan() {
            nan |= g.is_nan() != w.is_nan();
            continue;
        }
        if g != w {
            let e = (g - w).abs();
            nan |= e.is_nan();
            err = err.max(e);
        }
        scale = scale.max(w.abs());
    }
    match (nan, scale > 0.0) {
        (true, _) => f32::NAN,
        (false, true) => err / scale,
        (false, false) if err == 0.0 => 0.0,
        (false, false) => f32::INFINITY,
    }
}

/// Runs one case; `Ok(true)` when it is within [`TOLERANCE`].
fn run_case(
    name: &str,
    bytes: &[u8],
    bufs: &mut Buffers,
    peak_stack: &mut usize,
) -> Result<bool, &'static str> {
    let case = load(bytes).map_err(|e| e.0)?;
    let v: ValidShape = case.shape.validate().map_err(|_| "invalid shape")?;
    let s = case.shape;
    // Saturating: a file with absurd sizes fails the capacity check below.
    let bdl = s.batch.saturating_mul(s.dim).saturating_mul(s.seqlen);
    let bdn = s.batch.saturating_mul(s.dim).saturating_mul(s.dstate);
    let need = ss2d_core::scratch_len(&v);
    if need > SCRATCH_CAP || bdl > OUT_CAP || bdn > STATE_CAP {
        return Err("case larger than the firmware's buffers");
    }
    let (out, state, scratch) = (
        &mut bufs.out[..bdl],
        &mut bufs.state[..bdn],
        &mut bufs.scratch[..need],
    );
    // NaN in every output element: one the scan does not write fails the comparison.
    out.fill(f32::NAN);
    state.fill(f32::NAN);
    let want_state = case.want_state.is_some();
    let mut result = Ok(());
    let stack = stack::peak(&mut || {
        ss2d_mark_begin();
        result = ss2d_core::selective_scan(
            &case.shape,
            &case.walk,
            &case.args,
            out,
            want_state.then_some(&mut *state),
            scratch,
        );
        ss2d_mark_end();
    });
    if let Err(e) = result {
        say!("  {name}: scan error: {e}");
        return Err("scan returned an error");
    }
    let err_out = max_rel_err(out, case.want_out);
    let err_state = case.want_state.map(|w| max_rel_err(state, w));
    let pass = err_out <= TOLERANCE && err_state.is_none_or(|e| e <= TOLERANCE);
    *peak_stack = (*peak_stack).max(stack.bytes);
    say!(
        "case {name}: B={} D={} L={} N={} scratch={} floats ({} B) stack={} B{} out max_rel_err={:.2e}{} {}",
        s.batch,
        s.dim,
        s.seqlen,
        s.dstate,
        need,
        need * 4,
        stack.bytes,
        if stack.overflow { " (window exhausted)" } else { "" },
        err_out,
        StateErr(err_state),
        if pass { "ok" } else { "FAIL" }
    );
    Ok(pass && !stack.overflow)
}

struct StateErr(Option<f32>);
impl core::fmt::Display for StateErr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(e) => write!(f, " last_state max_rel_err={e:.2e}"),
            None => Ok(()),
        }
    }
}

/// Scratch for typical shapes (it depends on `dstate` and the lane count only).
fn print_scratch_table() {
    for n in [1usize, 4, 8, 16, 64] {
        let shape = ScanShape {
            batch: 1,
            dim: 192,
            seqlen: 3136,
            dstate: n,
            b: BcLayout::Grouped(1),
            c: BcLayout::Grouped(1),
            layout: Layout::ChannelFirst,
        };
        if let Ok(v) = shape.validate() {
            let need = ss2d_core::scratch_len(&v);
            say!(
                "scratch N={n}: {need} floats ({} B), any batch/dim/seqlen",
                need * 4
            );
        }
    }
}

#[entry]
fn main() -> ! {
    let Some(bufs) = take_buffers() else {
        exit(false);
    };
    say!(
        "ss2d-core selective scan on {}; {} cases; tolerance {:.0e}",
        core_name(),
        CASES.len(),
        TOLERANCE
    );
    print_scratch_table();
    let (mut passed, mut failed, mut peak) = (0usize, 0usize, 0usize);
    for (name, file) in CASES {
        match run_case(name, &file.0, bufs, &mut peak) {
            Ok(true) => passed += 1,
            Ok(false) => failed += 1,
            Err(e) => {
                say!("case {name}: FAIL: {e}");
                failed += 1;
            }
        }
    }
    say!("peak scan stack: {peak} B");
    say!(
        "summary: {passed} passed, {failed} failed, 0 skipped, of {}",
        CASES.len()
    );
    exit(failed == 0 && passed > 0 && passed == CASES.len());
}

/// The core QEMU emulates, from the CPUID part number (ARM DDI 0403 / 0553).
fn core_name() -> &'static str {
    let Some(p) = cortex_m::Peripherals::take() else {
        return "unknown core (peripherals taken)";
    };
    match (p.CPUID.base.read() >> 4) & 0xFFF {
        0xC23 => "Cortex-M3",
        0xC24 => "Cortex-M4",
        0xC27 => "Cortex-M7",
        0xD21 => "Cortex-M33",
        _ => "unknown Cortex-M core",
    }
}

fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("panic: {info}");
    exit(false)
}
