//! Test support shared by the tests of every ss2d crate, the benches and the fuzz targets. Not
//! published; nothing here is part of the ss2d API.
//!
//! - [`golden_dir`]: the one path to the golden data (`testdata/golden` of this repository, found
//!   from this crate's manifest directory, never outside the checkout), [`golden_cases`] lists a
//!   group and fails on an empty one, [`Golden`] loads a file.
//! - [`diff`], [`check_close`], [`assert_close`], [`rel_err`], [`assert_bitwise`]: comparisons
//!   that name the worst element and let no NaN or infinity through: a non-finite value on
//!   either side must match exactly (NaN with NaN, `+inf` with `+inf`), anything else is an
//!   infinite error that no tolerance accepts.
//! - [`Lcg`]: the one seeded generator of the tests.
//! - [`skip`]: a skipped test is printed where the test harness does not swallow it, counted in
//!   `$SS2D_SKIP_LOG`, and is a failure under CI (`CI=true`).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Golden data
// ---------------------------------------------------------------------------------------------

/// The golden data: `testdata/golden` of this repository.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden")
}

/// Every `*.safetensors` file of the golden group `group` (`selective_scan`, `cross_scan`,
/// `ss2d`), sorted by name; see [`cases_in`].
pub fn golden_cases(group: &str) -> Vec<PathBuf> {
    cases_in(&golden_dir().join(group))
}

/// Every `*.safetensors` file of `dir`, sorted by name. Panics when there is none: a missing
/// golden set fails loudly instead of passing with zero cases.
pub fn cases_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read golden dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no golden files in {}", dir.display());
    v
}

/// A tensor: shape and row-major data.
pub type Tensor = (Vec<usize>, Vec<f32>);

/// One golden file: its `f32` tensors and its string metadata.
#[derive(Clone, Debug)]
pub struct Golden {
    /// File name without `.safetensors`, e.g. `ss_b1_d3_l7_n4_constBC`.
    pub name: String,
    /// name -> (shape, data).
    pub tensors: HashMap<String, Tensor>,
    /// The `__metadata__` map.
    pub meta: HashMap<String, String>,
}

impl Golden {
    /// Loads a `.safetensors` file; every tensor must be `F32`. Panics naming the path on error.
    pub fn load(path: &Path) -> Golden {
        let bytes =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("bad safetensors {}: {e:?}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .unwrap_or_else(|e| panic!("bad safetensors header {}: {e:?}", path.display()));
        let meta = header.metadata().clone().unwrap_or_default();
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            assert_eq!(
                view.dtype(),
                safetensors::Dtype::F32,
                "{}: tensor {name} is not f32",
                path.display()
            );
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let shape = view.shape().to_vec();
            assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
            tensors.insert(name, (shape, data));
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Golden {
            name,
            tensors,
            meta,
        }
    }

    /// Whether the file holds tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Data of a tensor that must exist.
    pub fn tensor(&self, name: &str) -> &[f32] {
        match self.tensors.get(name) {
            Some((_, d)) => d,
            None => panic!("{}: no tensor `{name}`", self.name),
        }
    }

    /// Shape of a tensor that must exist.
    pub fn shape(&self, name: &str) -> &[usize] {
        match self.tensors.get(name) {
            Some((s, _)) => s,
            None => panic!("{}: no tensor `{name}`", self.name),
        }
    }

    /// Data of an optional tensor.
    pub fn opt(&self, name: &str) -> Option<&[f32]> {
        self.tensors.get(name).map(|(_, d)| d.as_slice())
    }

    /// A metadata value that must exist.
    pub fn meta(&self, key: &str) -> &str {
        match self.meta.get(key) {
            Some(v) => v,
            None => panic!("{}: no metadata `{key}`", self.name),
        }
    }

    /// A metadata value parsed as `usize`.
    pub fn meta_usize(&self, key: &str) -> usize {
        let v = self.meta(key);
        v.parse()
            .unwrap_or_else(|_| panic!("{}: metadata `{key}` = {v:?} is not usize", self.name))
    }

    /// A metadata value `true` / `false`.
    pub fn meta_bool(&self, key: &str) -> bool {
        match self.meta(key) {
            "true" => true,
            "false" => false,
            v => panic!("{}: metadata `{key}` = {v:?} is not a bool", self.name),
        }
    }

    /// A metadata value holding JSON.
    pub fn meta_json(&self, key: &str) -> serde_json::Value {
        let v = self.meta(key);
        serde_json::from_str(v)
            .unwrap_or_else(|e| panic!("{}: metadata `{key}` is not JSON: {e}", self.name))
    }
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

/// `max |x|` over the finite values of `x`, in `f64` (0 for none).
pub fn max_abs<T: Copy + Into<f64>>(x: &[T]) -> f64 {
    x.iter()
        .map(|&v| v.into())
        .filter(|v: &f64| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
}

/// The error of one element: `|got - want|` when both are finite; 0 when both are the same
/// non-finite value (NaN and NaN, or equal infinities); infinite otherwise.
pub fn elem_err(got: f64, want: f64) -> f64 {
    if got.is_finite() && want.is_finite() {
        (got - want).abs()
    } else if got == want || (got.is_nan() && want.is_nan()) {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Worst element of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    /// `max |got - want|` ([`elem_err`]: infinite where a NaN or infinity is not matched).
    pub max_err: f64,
    /// Index of the worst element.
    pub at: usize,
    /// `got[at]`.
    pub got: f64,
    /// `want[at]`.
    pub want: f64,
    /// `max |want|` over the finite values of `want`.
    pub max_ref: f64,
}

impl Diff {
    /// `max_err / max_ref` (`max_err` itself when `max_ref` is 0; infinite when an element's
    /// error is).
    pub fn ratio(&self) -> f64 {
        if self.max_err == 0.0 {
            0.0
        } else if self.max_ref > 0.0 {
            self.max_err / self.max_ref
        } else {
            self.max_err
        }
    }
}

/// Elementwise comparison; panics when the lengths differ.
pub fn diff<A: Copy + Into<f64>, B: Copy + Into<f64>>(got: &[A], want: &[B]) -> Diff {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let mut d = Diff {
        max_err: 0.0,
        at: 0,
        got: 0.0,
        want: 0.0,
        max_ref: max_abs(want),
    };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w): (f64, f64) = (g.into(), w.into());
        let e = elem_err(g, w);
        if e > d.max_err || i == 0 {
            d.max_err = e.max(d.max_err);
            d.at = i;
            d.got = g;
            d.want = w;
        }
    }
    d
}

/// `max |got - want| / max |want|`, infinite when a NaN or infinity on either side is not
/// matched by the same value on the other (so an all-NaN output never scores 0).
pub fn rel_err<A: Copy + Into<f64>, B: Copy + Into<f64>>(got: &[A], want: &[B]) -> f64 {
    diff(got, want).ratio()
}

/// Asserts `max |got - want| <= tol_rel_to_max * max |want|` and returns the measured
/// `max |got - want| / max |want|`. On failure names the worst index and both values.
pub fn assert_close<A: Copy + Into<f64>, B: Copy + Into<f64>>(
    name: &str,
    got: &[A],
    want: &[B],
    tol_rel_to_max: f64,
) -> f64 {
    assert_close_floor(name, got, want, tol_rel_to_max, 0.0)
}

/// Like [`assert_close`] with an absolute floor: `max |got - want| <= rel * max |want| + abs`.
pub fn assert_close_floor<A: Copy + Into<f64>, B: Copy + Into<f64>>(
    name: &str,
    got: &[A],
    want: &[B],
    rel: f64,
    abs: f64,
) -> f64 {
    check_close(name, got, want, rel, abs).unwrap_or_else(|m| panic!("{m}"))
}

/// Non-panicking [`assert_close_floor`]: `Ok(err / max|ref|)` or a message naming the worst
/// element. An unmatched NaN or infinity is always an error.
pub fn check_close<A: Copy + Into<f64>, B: Copy + Into<f64>>(
    name: &str,
    got: &[A],
    want: &[B],
    rel: f64,
    abs: f64,
) -> Result<f64, String> {
    let d = diff(got, want);
    let tol = rel * d.max_ref + abs;
    if d.max_err.is_finite() && d.max_err <= tol {
        Ok(d.ratio())
    } else {
        Err(format!(
            "{name}: max|err| = {:.3e} > tol {:.3e} (= {rel:.0e} x max|ref| {:.3e} + {abs:.0e}); \
             worst at index {} of {}: got {:e}, want {:e}; err/max|ref| = {:.3e}",
            d.max_err,
            tol,
            d.max_ref,
            d.at,
            got.len(),
            d.got,
            d.want,
            d.ratio()
        ))
    }
}

/// The bit patterns of `v` (for `assert_eq!` of bitwise-identical outputs).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Non-panicking [`assert_bitwise`].
pub fn check_bitwise(name: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{name}: length {} != {}", got.len(), want.len()));
    }
    match got
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        None => Ok(()),
        Some(i) => {
            let n = got
                .iter()
                .zip(want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            Err(format!(
                "{name}: not bitwise equal: {n} of {} elements differ, first at index {i}: \
                 got {:e} ({:#010x}), want {:e} ({:#010x})",
                got.len(),
                got[i],
                got[i].to_bits(),
                want[i],
                want[i].to_bits()
            ))
        }
    }
}

/// Asserts bitwise equality of two `f32` buffers, naming the first differing index.
pub fn assert_bitwise(name: &str, got: &[f32], want: &[f32]) {
    check_bitwise(name, got, want).unwrap_or_else(|m| panic!("{m}"))
}

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

/// A 64-bit linear congruential generator (Knuth's MMIX constants); draws come from the high
/// bits of the state.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

/// Creates a generator from a seed ([`Lcg::new`]).
pub fn lcg(seed: u64) -> Lcg {
    Lcg::new(seed)
}

impl Lcg {
    /// A generator from a seed (any value, 0 included): the seed is mixed and one draw is
    /// discarded, so nearby seeds give unrelated streams.
    pub fn new(seed: u64) -> Lcg {
        let mut g = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
        g.next_u64();
        g
    }

    /// A generator whose state is exactly `state` (no mixing).
    pub fn from_state(state: u64) -> Lcg {
        Lcg(state)
    }

    /// Advances the state and returns it.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// Next 32 random bits (the high half of the state).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 40) as f64 / (1u64 << 24) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        (lo as f64 + (hi as f64 - lo as f64) * self.unit()) as f32
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u32() as u64 * n as u64) >> 32) as usize
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn fill(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Skips
// ---------------------------------------------------------------------------------------------

/// Whether this is a CI run: `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Records that `test` did not run because of `reason` (a tool or package is missing). Under
/// CI ([`in_ci`]) this panics: a CI machine must have every tool. Otherwise it writes
/// `SKIP <test>: <reason>` straight to the process's stderr (the test harness captures only
/// `print!`-style output, so the line shows in a plain `cargo test`) and appends the same line
/// to the file named by `SS2D_SKIP_LOG`, when set, so a driver can count the skips.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    if in_ci() {
        panic!("{line} (CI is set: a missing tool is a failure, not a skip)");
    }
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(log) = std::env::var_os("SS2D_SKIP_LOG") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            panic!(
                "cannot append to SS2D_SKIP_LOG={}: {e}",
                log.to_string_lossy()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_groups_are_in_the_repository_and_not_empty() {
        let dir = golden_dir().canonicalize().expect("testdata/golden exists");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .canonicalize()
            .unwrap();
        assert!(
            dir.starts_with(&repo),
            "{} outside {}",
            dir.display(),
            repo.display()
        );
        for (group, n) in [("selective_scan", 14), ("cross_scan", 17), ("ss2d", 15)] {
            assert_eq!(golden_cases(group).len(), n, "{group}");
        }
    }

    #[test]
    #[should_panic(expected = "no golden files")]
    fn an_empty_folder_fails() {
        let empty = std::env::temp_dir().join(format!("ss2d-empty-golden-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("README.md"), "not a case").unwrap();
        cases_in(&empty);
    }

    #[test]
    fn loads_a_golden_file() {
        let g = Golden::load(&golden_cases("selective_scan")[0]);
        let b = g.meta_usize("Bsz");
        let d = g.meta_usize("D");
        let l = g.meta_usize("L");
        assert_eq!(g.shape("u"), &[b, d, l]);
        assert_eq!(g.tensor("out").len(), b * d * l);
        assert!(g.has("A") && !g.has("nope"));
    }

    #[test]
    fn a_nan_output_fails() {
        let want = [1.0f32, -2.0, 3.0];
        for got in [
            [f32::NAN, -2.0, 3.0],
            [f32::NAN; 3],
            [1.0, f32::INFINITY, 3.0],
            [1.0, -2.0, f32::NEG_INFINITY],
        ] {
            assert_eq!(rel_err(&got, &want), f64::INFINITY, "{got:?}");
            assert!(
                check_close("nan", &got, &want, 1e30, 1e30).is_err(),
                "{got:?}"
            );
        }
        // A NaN expected value is matched only by NaN, and does not widen the scale.
        let want = [1.0f32, f32::NAN];
        assert!(check_close("w", &[1.0f32, 5.0], &want, 1e-5, 0.0).is_err());
        assert_eq!(rel_err(&[1.0f32, f32::NAN], &want), 0.0);
        assert_eq!(diff(&[1.0f32, f32::NAN], &want).max_ref, 1.0);
        // Equal infinities agree.
        assert_eq!(rel_err(&[f32::INFINITY], &[f32::INFINITY]), 0.0);
    }

    #[test]
    fn close_values_pass_and_far_ones_fail() {
        let want = [1.0f32, -4.0, 2.0];
        let got = [1.0f32, -4.0 + 3e-5, 2.0];
        let r = check_close("ok", &got, &want, 1e-5, 0.0).unwrap();
        assert!((r - 3e-5 / 4.0).abs() < 1e-7, "{r}");
        let e = check_close("far", &got, &want, 1e-6, 0.0).unwrap_err();
        assert!(e.contains("worst at index 1 of 3"), "{e}");
        assert_eq!(rel_err(&[0.0f32], &[0.0f32]), 0.0);
        assert!(check_bitwise("b", &[0.0], &[-0.0]).is_err());
    }

    #[test]
    fn lcg_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Lcg::new(3), Lcg::new(3));
        for _ in 0..1000 {
            let x = a.uniform(-2.0, 5.0);
            assert_eq!(x.to_bits(), b.uniform(-2.0, 5.0).to_bits());
            assert!((-2.0..5.0).contains(&x));
            assert!(a.below(7) < 7);
            b.below(7);
        }
        assert_ne!(Lcg::new(3).next_u64(), Lcg::new(4).next_u64());
    }
}
