//! Shared helpers for the C ABI tests: tensor descriptors (dense and strided) and a host
//! `parallel_for` on scoped threads; golden files, comparisons and the generator come from
//! `ss2d-testsupport`.
#![allow(dead_code, unused_imports)]

use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use ss2d_capi::*;
pub use ss2d_testsupport::{bits, golden_cases, rel_err, Golden, Lcg};

pub fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated string, never NULL.
    unsafe { CStr::from_ptr(ss2d_last_error()) }
        .to_string_lossy()
        .into_owned()
}

pub fn status_name(s: i32) -> String {
    // SAFETY: static NUL-terminated string.
    unsafe { CStr::from_ptr(ss2d_status_name(s)) }
        .to_string_lossy()
        .into_owned()
}

/// Panics with the status name and message unless `s` is OK.
#[track_caller]
pub fn ok(s: i32) {
    assert_eq!(s, 0, "{}: {}", status_name(s), last_error());
}

/// Row-major strides of a shape.
pub fn rm_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i] as isize;
    }
    s
}

fn arrays(shape: &[usize], strides: &[isize]) -> ([usize; 6], [isize; 6]) {
    let (mut a, mut b) = ([0usize; 6], [0isize; 6]);
    a[..shape.len()].copy_from_slice(shape);
    b[..strides.len()].copy_from_slice(strides);
    (a, b)
}

/// A dense row-major input descriptor over `data`.
pub fn cten(data: &[f32], shape: &[usize]) -> ss2d_const_tensor {
    let (s, st) = arrays(shape, &rm_strides(shape));
    ss2d_const_tensor {
        data: data.as_ptr(),
        ndim: shape.len(),
        shape: s,
        strides: st,
    }
}

/// A dense row-major output descriptor over `data`.
pub fn mten(data: &mut [f32], shape: &[usize]) -> ss2d_tensor {
    let (s, st) = arrays(shape, &rm_strides(shape));
    ss2d_tensor {
        data: data.as_mut_ptr(),
        ndim: shape.len(),
        shape: s,
        strides: st,
    }
}

/// A logical tensor stored with arbitrary strides inside a larger buffer whose other
/// elements hold a sentinel (to check nothing outside the view is written).
pub struct Strided {
    pub buf: Vec<f32>,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
}

pub const SENTINEL: f32 = -12345.5;

impl Strided {
    /// `rm`: row-major data of `shape`. Memory order `perm` (outermost first), innermost step
    /// `step`, `pad` extra elements after each memory row, and axes in `flip` reversed.
    pub fn new(
        rm: &[f32],
        shape: &[usize],
        perm: &[usize],
        step: usize,
        pad: usize,
        flip: &[usize],
    ) -> Strided {
        let nd = shape.len();
        let mut strides = vec![0isize; nd];
        let mut acc = step as isize;
        for (j, &ax) in perm.iter().enumerate().rev() {
            strides[ax] = acc;
            acc = acc * shape[ax] as isize + if j == nd - 1 { pad as isize } else { 0 };
        }
        let mut offset = 0isize;
        for &ax in flip {
            if shape[ax] > 0 {
                offset += (shape[ax] as isize - 1) * strides[ax];
            }
            strides[ax] = -strides[ax];
        }
        let total = if rm.is_empty() {
            1
        } else {
            acc.max(1) as usize + 1
        };
        let mut s = Strided {
            buf: vec![SENTINEL; total],
            offset: offset as usize,
            shape: shape.to_vec(),
            strides,
        };
        s.write_rm(rm);
        s
    }

    fn offsets(&self) -> Vec<usize> {
        let n: usize = self.shape.iter().product();
        let rms = rm_strides(&self.shape);
        (0..n)
            .map(|i| {
                let mut off = self.offset as isize;
                for ((&r, &n), &st) in rms.iter().zip(&self.shape).zip(&self.strides) {
                    off += ((i as isize / r) % n as isize) * st;
                }
                off as usize
            })
            .collect()
    }

    pub fn write_rm(&mut self, rm: &[f32]) {
        for (i, off) in self.offsets().into_iter().enumerate() {
            self.buf[off] = rm[i];
        }
    }

    pub fn read_rm(&self) -> Vec<f32> {
        self.offsets().into_iter().map(|o| self.buf[o]).collect()
    }

    /// Number of buffer elements outside the view that no longer hold the sentinel.
    pub fn touched_outside(&self) -> usize {
        let inside: std::collections::HashSet<usize> = self.offsets().into_iter().collect();
        self.buf
            .iter()
            .enumerate()
            .filter(|(i, v)| !inside.contains(i) && v.to_bits() != SENTINEL.to_bits())
            .count()
    }

    pub fn c(&self) -> ss2d_const_tensor {
        let (s, st) = arrays(&self.shape, &self.strides);
        ss2d_const_tensor {
            data: self.buf[self.offset..].as_ptr(),
            ndim: self.shape.len(),
            shape: s,
            strides: st,
        }
    }

    pub fn m(&mut self) -> ss2d_tensor {
        let (s, st) = arrays(&self.shape, &self.strides);
        let off = self.offset;
        ss2d_tensor {
            data: self.buf[off..].as_mut_ptr(),
            ndim: self.shape.len(),
            shape: s,
            strides: st,
        }
    }
}

/// A host `parallel_for` over scoped threads; `ctx` is the thread count.
///
/// # Safety
/// Called by the library with its item function and context.
pub unsafe extern "C" fn host_pfor(
    ctx: *mut c_void,
    n: usize,
    item: ss2d_item_fn,
    item_ctx: *mut c_void,
) {
    let threads = (ctx as usize).max(1);
    let item = item.expect("item function");
    let next = AtomicUsize::new(0);
    let ic = item_ctx as usize;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                // SAFETY: the library's item function with its context, each i once.
                unsafe { item(ic as *mut c_void, i) };
            });
        }
    });
}

/// An `ss2d_exec` with nothing set (sequential, library scratch).
pub fn exec_seq() -> ss2d_exec {
    ss2d_exec {
        n_threads: 0,
        parallel_for: None,
        parallel_for_ctx: std::ptr::null_mut(),
        n_items: 0,
        scratch: std::ptr::null_mut(),
        scratch_len: 0,
    }
}

pub fn exec_threads(n: usize) -> ss2d_exec {
    ss2d_exec {
        n_threads: n,
        ..exec_seq()
    }
}

/// The host pool with `threads` threads (also the width hint) and `n_items` items per round.
pub fn exec_host(threads: usize, n_items: usize) -> ss2d_exec {
    ss2d_exec {
        n_threads: threads,
        parallel_for: Some(host_pfor),
        parallel_for_ctx: threads as *mut c_void,
        n_items,
        ..exec_seq()
    }
}

/// A varied set of execs: sequential, library pool, host pool with several item counts.
pub fn all_execs() -> Vec<(&'static str, ss2d_exec)> {
    vec![
        ("seq", exec_seq()),
        ("threads2", exec_threads(2)),
        ("threads3", exec_threads(3)),
        ("host1", exec_host(1, 0)),
        ("host3", exec_host(3, 0)),
        ("host4x7", exec_host(4, 7)),
        ("host2x1", exec_host(2, 1)),
    ]
}

/// `n` values uniform in `[lo, hi)` from the test generator seeded with `seed`.
pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    Lcg::new(seed).fill(n, lo, hi)
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Runs `cmd` with a time limit of `secs` seconds (a hang fails the test instead of stalling
/// the suite): its exit status and its stdout followed by its stderr. `Err` when it cannot be
/// started.
pub fn run_within(
    cmd: &mut std::process::Command,
    secs: u64,
) -> std::io::Result<(std::process::ExitStatus, String)> {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Drained while the child runs, so that a full pipe cannot stall it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    Ok((status, text))
}
