//! `ss2d cross-scan IN OUT` and `ss2d cross-merge IN OUT`: VMamba's `cross_scan_fn` /
//! `cross_merge_fn` (docs/semantics.md section 4) on a safetensors file.
//!
//! The flags `in_channel_first`, `out_channel_first`, `one_by_one` and `scans` come from the
//! command line, else the input's `__metadata__`, else upstream's defaults (`true`, `true`,
//! `false`, `0`). The sizes are inferred from the input's shape under those flags:
//!
//! | command | reads | rank | layout (`*_channel_first` true / false) | writes |
//! |---|---|---|---|---|
//! | cross-scan | `x` | 4 | `(B, C, H, W)` / `(B, H, W, C)` (2D side: `in_channel_first`) | `xs` `(B, 4, C, L)` / `(B, L, 4, C)` (`out_channel_first`) |
//! | cross-scan, one-by-one | `x` | 5 | `(B, 4, C, H, W)` / `(B, H, W, 4, C)` | `xs` as above |
//! | cross-merge | `ys` | 5 | `(B, 4, C, H, W)` / `(B, H, W, 4, C)` (sequence side: `out_channel_first`) | `y` `(B, C, L)` / `(B, L, C)` (`in_channel_first`) |
//! | cross-merge, one-by-one | `ys` | 5 | as above | `y` `(B, 4, C, L)` / `(B, L, 4, C)` |
//!
//! The work is `ss2d_std::cross::{cross_scan, cross_merge}` on `--threads` threads (bitwise
//! identical for every count); `--reference` runs a direct transcription of the index table of
//! docs/semantics.md section 4 instead (one thread).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use ss2d_core::SimdLevel;
use ss2d_std::cross::{
    cross_merge, cross_merge_output_len, cross_scan, cross_scan_output_len, CrossDims, CrossOpts,
    ScanMode,
};
use ss2d_std::Parallelism;

use crate::error::{zeros, Error};
use crate::io::{fmt_shape, write_tensors, IoError, OutTensor, TensorFile};
use crate::scan::default_threads;

/// Arguments of `ss2d cross-scan` and `ss2d cross-merge`. Flags given here win over IN's
/// `__metadata__`.
#[derive(Debug, Args)]
pub struct CrossArgs {
    /// Input safetensors file (`x` for cross-scan, `ys` for cross-merge).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output safetensors file (written atomically; never left partial).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Worker threads [default: all available cores]. The result is bitwise identical for
    /// every thread count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
    /// Run the scalar reference (the index table of the specification, one thread).
    #[arg(long)]
    pub reference: bool,
    /// Layout of the 2D side (`x`, `y`): (B, C, H, W) when true, (B, H, W, C) when false
    /// [default: the file's `__metadata__`, else true].
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub in_channel_first: Option<bool>,
    /// Layout of the sequence side (`xs`, `ys`): (B, 4, C, L) when true, (B, L, 4, C) when
    /// false [default: the file's `__metadata__`, else true].
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub out_channel_first: Option<bool>,
    /// The 2D side holds one slice per direction; the merge does not sum them
    /// [default: the file's `__metadata__`, else false].
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set,
          value_parser = clap::value_parser!(bool))]
    pub one_by_one: Option<bool>,
    /// Directions: 0 = cross2d, 1 = unidi, 2 = bidi (names accepted too)
    /// [default: the file's `__metadata__`, else 0].
    #[arg(long, value_name = "0|1|2", value_parser = parse_scans)]
    pub scans: Option<ScanMode>,
}

/// Parses VMamba's `scans` value: `0`/`1`/`2` or `cross2d`/`unidi`/`bidi`.
pub fn parse_scans(s: &str) -> Result<ScanMode, String> {
    let t = s.trim();
    if t == "3" {
        return Err(
            "scans=3 is not implemented (upstream references it but has no \
                    implementation); expected 0 (cross2d), 1 (unidi) or 2 (bidi)"
                .into(),
        );
    }
    t.parse::<i64>()
        .ok()
        .and_then(|v| ScanMode::from_scans(v).ok())
        .or_else(|| ScanMode::from_name(t).ok())
        .ok_or_else(|| {
            format!("`{t}` is not a scan mode; expected 0 (cross2d), 1 (unidi) or 2 (bidi)")
        })
}

/// Which direction of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `x` -> `xs`.
    Scan,
    /// `ys` -> `y`.
    Merge,
}

impl Direction {
    fn command(self) -> &'static str {
        match self {
            Direction::Scan => "cross-scan",
            Direction::Merge => "cross-merge",
        }
    }

    /// The tensor read and the tensor written.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Direction::Scan => ("x", "xs"),
            Direction::Merge => ("ys", "y"),
        }
    }
}

/// The result of a cross-scan or cross-merge: the output tensor, its shape and what ran.
#[derive(Clone, Debug)]
pub struct CrossOutput {
    /// Sizes inferred from the input.
    pub dims: CrossDims,
    /// The flags that applied.
    pub opts: CrossOpts,
    /// Shape of the output tensor.
    pub shape: Vec<usize>,
    /// The output tensor (`xs` or `y`).
    pub data: Vec<f32>,
}

/// The flags given on the command line (`None`: take the metadata).
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossFlags {
    /// `--in-channel-first`.
    pub in_channel_first: Option<bool>,
    /// `--out-channel-first`.
    pub out_channel_first: Option<bool>,
    /// `--one-by-one`.
    pub one_by_one: Option<bool>,
    /// `--scans`.
    pub scans: Option<ScanMode>,
}

/// Resolves the flags: command line, then `__metadata__`, then upstream's defaults.
pub fn resolve_opts(file: &TensorFile, flags: &CrossFlags) -> Result<CrossOpts, Error> {
    let boolean = |given: Option<bool>, key: &str, default: bool| -> Result<bool, Error> {
        match given {
            Some(v) => Ok(v),
            None => Ok(file.meta_bool(key)?.unwrap_or(default)),
        }
    };
    let mode = match flags.scans {
        Some(m) => m,
        None => match file.metadata().get("scans") {
            None => ScanMode::Cross2d,
            Some(v) => parse_scans(v).map_err(|_| IoError::Metadata {
                path: file.path().to_path_buf(),
                key: "scans".into(),
                value: v.clone(),
                expected: "0 (cross2d), 1 (unidi) or 2 (bidi) (scans=3 is not implemented \
                           upstream)",
            })?,
        },
    };
    Ok(CrossOpts {
        mode,
        in_channel_first: boolean(flags.in_channel_first, "in_channel_first", true)?,
        out_channel_first: boolean(flags.out_channel_first, "out_channel_first", true)?,
        one_by_one: boolean(flags.one_by_one, "one_by_one", false)?,
    })
}

fn layout_word(cf: bool) -> &'static str {
    if cf {
        "channel-first"
    } else {
        "channel-last"
    }
}

/// Infers `(B, C, H, W)` from the input's shape under `opts`, or says what is wrong.
fn infer_dims(
    path: &Path,
    dir: Direction,
    name: &str,
    shape: &[usize],
    opts: &CrossOpts,
) -> Result<CrossDims, Error> {
    // The layout flag of the input side and whether the input has a direction axis.
    let (cf, flag, four_axis) = match dir {
        Direction::Scan => (opts.in_channel_first, "in_channel_first", opts.one_by_one),
        Direction::Merge => (opts.out_channel_first, "out_channel_first", true),
    };
    let want = match (four_axis, cf) {
        (false, true) => "(B, C, H, W)",
        (false, false) => "(B, H, W, C)",
        (true, true) => "(B, 4, C, H, W)",
        (true, false) => "(B, H, W, 4, C)",
    };
    let why = || {
        let mut s = format!("{flag}={cf}");
        if dir == Direction::Scan {
            s.push_str(&format!(", one_by_one={}", opts.one_by_one));
        }
        s
    };
    let bad = |detail: String| Error::Shape {
        path: path.to_path_buf(),
        message: format!(
            "tensor `{name}` has shape {}, expected {want} ({} with {}){detail}",
            fmt_shape(shape),
            layout_word(cf),
            why()
        ),
    };
    let (b, c, h, w, k) = match (four_axis, cf, shape) {
        (false, true, &[b, c, h, w]) => (b, c, h, w, 4),
        (false, false, &[b, h, w, c]) => (b, c, h, w, 4),
        (true, true, &[b, k, c, h, w]) => (b, c, h, w, k),
        (true, false, &[b, h, w, k, c]) => (b, c, h, w, k),
        _ => return Err(bad(String::new())),
    };
    if k != 4 {
        return Err(bad(format!(": the direction axis has {k} entries, not 4")));
    }
    Ok(CrossDims {
        batch: b,
        channels: c,
        h,
        w,
    })
}

/// Shape of the output tensor.
fn output_shape(dir: Direction, d: &CrossDims, opts: &CrossOpts) -> Vec<usize> {
    // `h * w` was checked by `cross_*_output_len` before this runs.
    let l = d.h * d.w;
    let (b, c) = (d.batch, d.channels);
    match dir {
        Direction::Scan => {
            if opts.out_channel_first {
                vec![b, 4, c, l]
            } else {
                vec![b, l, 4, c]
            }
        }
        Direction::Merge => match (opts.one_by_one, opts.in_channel_first) {
            (false, true) => vec![b, c, l],
            (false, false) => vec![b, l, c],
            (true, true) => vec![b, 4, c, l],
            (true, false) => vec![b, l, 4, c],
        },
    }
}

/// Runs a cross-scan or cross-merge on the tensors of `file` (without writing anything).
pub fn cross_file(
    file: &TensorFile,
    dir: Direction,
    flags: &CrossFlags,
    threads: Option<usize>,
) -> Result<CrossOutput, Error> {
    let opts = resolve_opts(file, flags)?;
    let (in_name, _) = dir.names();
    let input = file.tensor(in_name)?;
    let dims = infer_dims(file.path(), dir, in_name, input.shape(), &opts)?;
    let core_err = |source| Error::Core {
        context: file.path().display().to_string(),
        source,
    };
    // Checks every size product (the input's own size is known to fit; `L` may not on a
    // zero-sized tensor with huge other axes).
    let n = match dir {
        Direction::Scan => cross_scan_output_len(dims, opts),
        Direction::Merge => cross_merge_output_len(dims, opts),
    }
    .map_err(core_err)?;
    let mut data = zeros(&format!("`{}`", dir.names().1), n)?;
    // An empty output (some size is 0) needs no work; the reference's loops over the other
    // axes could otherwise run for a long time (e.g. B = 2^40 with H = 0).
    let threads = if n == 0 { Some(1) } else { threads };
    match (dir, threads) {
        (Direction::Scan, Some(t)) => {
            cross_scan(input.data(), dims, opts, &mut data, Parallelism::Threads(t))
                .map_err(core_err)?
        }
        (Direction::Merge, Some(t)) => {
            cross_merge(input.data(), dims, opts, &mut data, Parallelism::Threads(t))
                .map_err(core_err)?
        }
        (Direction::Scan, None) => reference::scan(input.data(), &dims, &opts, &mut data),
        (Direction::Merge, None) => reference::merge(input.data(), &dims, &opts, &mut data),
    }
    Ok(CrossOutput {
        shape: output_shape(dir, &dims, &opts),
        dims,
        opts,
        data,
    })
}

/// The specification's index table, transcribed directly (no tiling, no threads): the
/// `--reference` path and an independent check of the library in the tests.
pub mod reference {
    use ss2d_std::cross::{CrossDims, CrossOpts, ScanMode};

    /// Position in direction `k`'s sequence of the pixel `(h, w)`.
    fn route(mode: ScanMode, k: usize, h: usize, w: usize, d: &CrossDims) -> usize {
        let l = d.h * d.w;
        let p = h * d.w + w;
        let q = w * d.h + h;
        match (mode, k) {
            (ScanMode::Cross2d, 0) => p,
            (ScanMode::Cross2d, 1) => q,
            (ScanMode::Cross2d, 2) => l - 1 - p,
            (ScanMode::Cross2d, _) => l - 1 - q,
            (ScanMode::Unidi, _) => p,
            (ScanMode::Bidi, 0 | 1) => p,
            (ScanMode::Bidi, _) => l - 1 - p,
        }
    }

    /// Offset of `(b, k, c, s)` on the sequence side (`(B, 4, C, L)` or `(B, L, 4, C)`).
    fn seq_at(o: &CrossOpts, d: &CrossDims, b: usize, k: usize, c: usize, s: usize) -> usize {
        let (cc, l) = (d.channels, d.h * d.w);
        if o.out_channel_first {
            ((b * 4 + k) * cc + c) * l + s
        } else {
            ((b * l + s) * 4 + k) * cc + c
        }
    }

    /// Offset of `(b, [k,] c, p)` on the 2D side (`k` only one-by-one).
    fn plane_at(o: &CrossOpts, d: &CrossDims, b: usize, k: usize, c: usize, p: usize) -> usize {
        let (cc, l) = (d.channels, d.h * d.w);
        match (o.one_by_one, o.in_channel_first) {
            (false, true) => (b * cc + c) * l + p,
            (false, false) => (b * l + p) * cc + c,
            (true, true) => ((b * 4 + k) * cc + c) * l + p,
            (true, false) => ((b * l + p) * 4 + k) * cc + c,
        }
    }

    /// True when either side has no element: then the loops below must not run over a
    /// (possibly huge) batch or channel count of an empty tensor.
    fn is_empty(d: &CrossDims) -> bool {
        d.batch == 0 || d.channels == 0 || d.h == 0 || d.w == 0
    }

    /// `xs[k][route_k(h, w)] = x[h, w]` (one-by-one: slice `k` of `x`).
    pub fn scan(x: &[f32], d: &CrossDims, o: &CrossOpts, xs: &mut [f32]) {
        if is_empty(d) {
            return;
        }
        for b in 0..d.batch {
            for k in 0..4 {
                for c in 0..d.channels {
                    for h in 0..d.h {
                        for w in 0..d.w {
                            let p = h * d.w + w;
                            let s = route(o.mode, k, h, w, d);
                            xs[seq_at(o, d, b, k, c, s)] = x[plane_at(o, d, b, k, c, p)];
                        }
                    }
                }
            }
        }
    }

    /// `y[p] = (ys0[r0] + ys2[r2]) + (ys1[r1] + ys3[r3])` for cross2d and bidi,
    /// `((ys0 + ys1) + ys2) + ys3` for unidi (upstream's order); one-by-one: `y[k][p] = ysk[rk]`.
    pub fn merge(ys: &[f32], d: &CrossDims, o: &CrossOpts, y: &mut [f32]) {
        if is_empty(d) {
            return;
        }
        for b in 0..d.batch {
            for c in 0..d.channels {
                for h in 0..d.h {
                    for w in 0..d.w {
                        let p = h * d.w + w;
                        let v: [f32; 4] = std::array::from_fn(|k| {
                            ys[seq_at(o, d, b, k, c, route(o.mode, k, h, w, d))]
                        });
                        if o.one_by_one {
                            for (k, &vk) in v.iter().enumerate() {
                                y[plane_at(o, d, b, k, c, p)] = vk;
                            }
                        } else {
                            y[plane_at(o, d, b, 0, c, p)] = match o.mode {
                                ScanMode::Unidi => ((v[0] + v[1]) + v[2]) + v[3],
                                _ => (v[0] + v[2]) + (v[1] + v[3]),
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Writes the result with the flags that applied as metadata.
pub fn write_output(
    path: &Path,
    dir: Direction,
    r: &CrossOutput,
    backend: &str,
) -> Result<(), Error> {
    let tensors = [OutTensor {
        name: dir.names().1,
        shape: &r.shape,
        data: &r.data,
    }];
    let mut meta = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        meta.insert(k.to_string(), v);
    };
    put("op", dir.command().to_string());
    put("backend", backend.to_string());
    put("isa", SimdLevel::current().name().to_string());
    put("in_channel_first", r.opts.in_channel_first.to_string());
    put("out_channel_first", r.opts.out_channel_first.to_string());
    put("one_by_one", r.opts.one_by_one.to_string());
    put("scans", r.opts.mode.scans().to_string());
    put("scans_name", r.opts.mode.name().to_string());
    put("H", r.dims.h.to_string());
    put("W", r.dims.w.to_string());
    put(
        "producer",
        concat!("ss2d ", env!("CARGO_PKG_VERSION")).to_string(),
    );
    write_tensors(path, &tensors, &meta)?;
    Ok(())
}

/// `ss2d cross-scan IN OUT ...` / `ss2d cross-merge IN OUT ...`.
pub fn command(a: &CrossArgs, dir: Direction) -> Result<(), Error> {
    let flags = CrossFlags {
        in_channel_first: a.in_channel_first,
        out_channel_first: a.out_channel_first,
        one_by_one: a.one_by_one,
        scans: a.scans,
    };
    let threads = if a.reference {
        None
    } else {
        Some(a.threads.map_or_else(default_threads, |t| t as usize))
    };
    let file = TensorFile::open(&a.input)?;
    let result = cross_file(&file, dir, &flags, threads)?;
    drop(file);
    let backend = if a.reference { "reference" } else { "kernel" };
    write_output(&a.output, dir, &result, backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_values() {
        assert_eq!(parse_scans("0"), Ok(ScanMode::Cross2d));
        assert_eq!(parse_scans("bidi"), Ok(ScanMode::Bidi));
        assert!(parse_scans("3").unwrap_err().contains("not implemented"));
        assert!(parse_scans("-1").unwrap_err().contains("expected 0"));
    }

    #[test]
    fn dims_from_shapes() {
        let p = Path::new("f");
        let mut o = CrossOpts::default();
        let d = infer_dims(p, Direction::Scan, "x", &[2, 3, 5, 7], &o).unwrap();
        assert_eq!((d.batch, d.channels, d.h, d.w), (2, 3, 5, 7));
        o.in_channel_first = false;
        let d = infer_dims(p, Direction::Scan, "x", &[2, 3, 5, 7], &o).unwrap();
        assert_eq!((d.batch, d.channels, d.h, d.w), (2, 7, 3, 5));
        o.one_by_one = true;
        let d = infer_dims(p, Direction::Scan, "x", &[2, 3, 5, 4, 7], &o).unwrap();
        assert_eq!((d.batch, d.channels, d.h, d.w), (2, 7, 3, 5));
        let e = infer_dims(p, Direction::Scan, "x", &[2, 3, 5, 3, 7], &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not 4"), "{e}");
        let e = infer_dims(p, Direction::Merge, "ys", &[2, 4, 3, 35], &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(B, 4, C, H, W)"), "{e}");
    }
}
