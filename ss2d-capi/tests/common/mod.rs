//! Shared helpers for the C ABI tests: golden files, tensor descriptors (dense and strided),
//! a host `parallel_for` on scoped threads, and comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::SafeTensors;
use ss2d_capi::*;

pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/golden");

/// A golden file: tensors (shape, row-major data) and metadata.
pub struct Golden {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub meta: HashMap<String, String>,
}

impl Golden {
    pub fn load(path: &Path) -> Golden {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, md) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let meta = md.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut tensors = HashMap::new();
        for (name, t) in st.tensors() {
            assert_eq!(t.dtype(), safetensors::Dtype::F32);
            let data = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(name, (t.shape().to_vec(), data));
        }
        Golden { tensors, meta }
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn t(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("tensor {name}"))
    }

    pub fn data(&self, name: &str) -> &[f32] {
        &self.t(name).1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.t(name).0
    }

    pub fn meta(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .unwrap_or_else(|| panic!("metadata {key}"))
    }

    pub fn flag(&self, key: &str) -> bool {
        self.meta(key) == "true"
    }

    pub fn usize(&self, key: &str) -> usize {
        self.meta(key).parse().unwrap()
    }
}

pub fn golden_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(GOLDEN).join(dir))
        .expect("golden directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// max|a - b| / max|ref|.
pub fn rel_err(a: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(a.len(), reference.len());
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(reference)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    if scale == 0.0 {
        err
    } else {
        err / scale
    }
}

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

/// A deterministic pseudo-random vector.
pub fn rand_vec(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
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
