//! The unfused SS2D scan against the intermediates (`debug.*`) of VMamba's own SS2D forward.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use ss2d_core::Error;
use ss2d_std::cross::ScanMode;
use ss2d_std::unfused::{
    project, ss2d_scan_unfused, ss2d_scan_unfused_intermediates, Ss2dScanShape, Ss2dScanWeights,
};
use ss2d_std::Parallelism;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/golden");

struct Golden {
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
}

impl Golden {
    fn load(path: &Path) -> Golden {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, md) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let meta = md.metadata().clone().unwrap_or_default();
        Golden { bytes, meta }
    }

    fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes)
            .expect("safetensors")
            .tensor(name)
            .is_ok()
    }

    fn tensor(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.bytes).expect("safetensors");
        let t = st.tensor(name).unwrap_or_else(|_| panic!("tensor {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    fn meta(&self, key: &str) -> &str {
        self.meta
            .get(key)
            .unwrap_or_else(|| panic!("metadata {key}"))
    }

    fn usize(&self, key: &str) -> usize {
        self.meta(key).parse().unwrap()
    }
}

fn golden_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(GOLDEN).join(dir))
        .expect("golden directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// max|a - b| / max|ref|.
fn rel_err(a: &[f32], reference: &[f32]) -> f32 {
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

/// (B, D, L) -> (B, L, D).
fn to_channel_last(x: &[f32], b: usize, d: usize, l: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for di in 0..d {
            for li in 0..l {
                out[(bi * l + li) * d + di] = x[(bi * d + di) * l + li];
            }
        }
    }
    out
}

struct Case {
    name: String,
    shape: Ss2dScanShape,
    x_proj_weight: Vec<f32>,
    dt_projs_weight: Vec<f32>,
    dt_projs_bias: Vec<f32>,
    a_logs: Vec<f32>,
    ds: Vec<f32>,
    g: Golden,
}

impl Case {
    fn weights(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.x_proj_weight,
            dt_projs_weight: &self.dt_projs_weight,
            dt_projs_bias: &self.dt_projs_bias,
            a_logs: &self.a_logs,
            ds: &self.ds,
        }
    }

    /// x (B, D, L) channel-first: direction 0 of `debug.us` (row-major in every mode).
    fn x_cf(&self) -> Vec<f32> {
        let us = self.g.tensor("debug.us");
        let (b, d) = (self.shape.batch, self.shape.dim);
        let l = self.shape.h * self.shape.w;
        let mut x = Vec::with_capacity(b * d * l);
        for bi in 0..b {
            x.extend_from_slice(&us[bi * 4 * d * l..(bi * 4 * d + d) * l]);
        }
        x
    }
}

const DEBUG: [&str; 6] = [
    "debug.us",
    "debug.dts",
    "debug.Bs",
    "debug.Cs",
    "debug.ys",
    "debug.y_merged",
];

fn cases() -> Vec<Case> {
    let mut out = vec![];
    for path in golden_files("ss2d") {
        let g = Golden::load(&path);
        let Ok(mode) = ScanMode::from_name(g.meta("scan_mode")) else {
            continue;
        };
        if !DEBUG.iter().all(|t| g.has(t)) {
            continue;
        }
        let shape = Ss2dScanShape {
            batch: g.usize("Bsz"),
            dim: g.usize("d_inner"),
            h: g.usize("H"),
            w: g.usize("W"),
            dstate: g.usize("d_state"),
            dt_rank: g.usize("dt_rank_resolved"),
            mode,
            channel_first: true,
        };
        out.push(Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            shape,
            x_proj_weight: g.tensor("x_proj_weight"),
            dt_projs_weight: g.tensor("dt_projs_weight"),
            dt_projs_bias: g.tensor("dt_projs_bias"),
            a_logs: g.tensor("A_logs"),
            ds: g.tensor("Ds"),
            g,
        });
    }
    out
}

#[test]
fn golden_intermediates() {
    let cases = cases();
    // v05_noz x4, v05 x2, v3, v051d (unidi), v052d (bidi).
    assert_eq!(cases.len(), 9, "golden ss2d cases with debug tensors");
    let mut modes = vec![];
    for case in &cases {
        let name = &case.name;
        let x = case.x_cf();
        let r = ss2d_scan_unfused_intermediates(
            &case.shape,
            &case.weights(),
            &x,
            Parallelism::Sequential,
        )
        .unwrap();
        assert_eq!(
            bits(&r.xs),
            bits(&case.g.tensor("debug.us")),
            "{name}: xs != debug.us"
        );
        let errs = [
            ("dts", rel_err(&r.proj.dts, &case.g.tensor("debug.dts"))),
            ("Bs", rel_err(&r.proj.bs, &case.g.tensor("debug.Bs"))),
            ("Cs", rel_err(&r.proj.cs, &case.g.tensor("debug.Cs"))),
            ("ys", rel_err(&r.ys, &case.g.tensor("debug.ys"))),
            ("y", rel_err(&r.y, &case.g.tensor("debug.y_merged"))),
        ];
        eprintln!("{name}: {errs:?}");
        for (t, e) in errs {
            assert!(e <= 1e-4, "{name}: {t} max err / max|ref| = {e:e}");
        }
        modes.push(case.shape.mode);
    }
    for m in [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi] {
        assert!(modes.contains(&m), "no golden case for {m:?}");
    }
}

#[test]
fn layouts_and_threads_agree_bitwise() {
    let pools: Vec<rayon::ThreadPool> = [1, 2, 3, 8]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    for case in cases() {
        let name = &case.name;
        let s = case.shape;
        let l = s.h * s.w;
        let x = case.x_cf();
        let mut y_ref = vec![f32::NAN; x.len()];
        ss2d_scan_unfused(&s, &case.weights(), &x, &mut y_ref, Parallelism::Sequential).unwrap();
        let full =
            ss2d_scan_unfused_intermediates(&s, &case.weights(), &x, Parallelism::Sequential)
                .unwrap();
        assert_eq!(bits(&full.y), bits(&y_ref), "{name}: intermediates path");
        for pool in &pools {
            let mut y = vec![f32::NAN; x.len()];
            ss2d_scan_unfused(&s, &case.weights(), &x, &mut y, Parallelism::Pool(pool)).unwrap();
            assert_eq!(
                bits(&y),
                bits(&y_ref),
                "{name}: {} threads",
                pool.current_num_threads()
            );
        }
        // Channel-last input gives the transposed output, bitwise.
        let cl = Ss2dScanShape {
            channel_first: false,
            ..s
        };
        let x_cl = to_channel_last(&x, s.batch, s.dim, l);
        let mut y_cl = vec![f32::NAN; x.len()];
        ss2d_scan_unfused(
            &cl,
            &case.weights(),
            &x_cl,
            &mut y_cl,
            Parallelism::Threads(2),
        )
        .unwrap();
        assert_eq!(
            bits(&y_cl),
            bits(&to_channel_last(&y_ref, s.batch, s.dim, l)),
            "{name}: channel-last"
        );
    }
}

#[test]
fn validation_names_the_tensor_and_writes_nothing() {
    let case = cases().into_iter().next().unwrap();
    let s = case.shape;
    let x = case.x_cf();
    let mut y = vec![7.0f32; x.len()];
    let w = case.weights();
    let check = |w: Ss2dScanWeights<'_>, tensor: &str, y: &mut Vec<f32>| {
        let e = ss2d_scan_unfused(&s, &w, &x, y, Parallelism::Sequential).unwrap_err();
        assert!(
            matches!(e, Error::Length { tensor: t, .. } if t == tensor),
            "{tensor}: {e:?}"
        );
        assert!(y.iter().all(|&v| v == 7.0));
    };
    let short = |v: &[f32]| v[..v.len() - 1].to_vec();
    let xp = short(w.x_proj_weight);
    check(
        Ss2dScanWeights {
            x_proj_weight: &xp,
            ..w
        },
        "x_proj_weight",
        &mut y,
    );
    let dp = short(w.dt_projs_weight);
    check(
        Ss2dScanWeights {
            dt_projs_weight: &dp,
            ..w
        },
        "dt_projs_weight",
        &mut y,
    );
    let db = short(w.dt_projs_bias);
    check(
        Ss2dScanWeights {
            dt_projs_bias: &db,
            ..w
        },
        "dt_projs_bias",
        &mut y,
    );
    let al = short(w.a_logs);
    check(Ss2dScanWeights { a_logs: &al, ..w }, "A_logs", &mut y);
    let ds = short(w.ds);
    check(Ss2dScanWeights { ds: &ds, ..w }, "Ds", &mut y);
    let e = ss2d_scan_unfused(&s, &w, &x[1..], &mut y, Parallelism::Sequential).unwrap_err();
    assert!(matches!(e, Error::Length { tensor: "x", .. }));
    let e = ss2d_scan_unfused(&s, &w, &x, &mut y[1..], Parallelism::Sequential).unwrap_err();
    assert!(matches!(e, Error::Length { tensor: "y", .. }));
    assert!(y.iter().all(|&v| v == 7.0));
    let bad = Ss2dScanShape { dstate: 0, ..s };
    assert_eq!(
        ss2d_scan_unfused(&bad, &w, &x, &mut y, Parallelism::Sequential),
        Err(Error::Dstate { dstate: 0 })
    );
    let huge = Ss2dScanShape {
        h: usize::MAX,
        w: 2,
        ..s
    };
    assert!(matches!(
        ss2d_scan_unfused(&huge, &w, &x, &mut y, Parallelism::Sequential),
        Err(Error::Overflow { .. })
    ));
    let e = project(&s, &w, &x, Parallelism::Sequential).unwrap_err();
    assert!(matches!(e, Error::Length { tensor: "xs", .. }));
}

#[test]
fn empty_problems_are_valid() {
    let (d, n, r) = (3usize, 2usize, 1usize);
    let xp = vec![0.1f32; 4 * (r + 2 * n) * d];
    let dp = vec![0.1f32; 4 * d * r];
    let db = vec![0.0f32; 4 * d];
    let al = vec![0.0f32; 4 * d * n];
    let ds = vec![1.0f32; 4 * d];
    let w = Ss2dScanWeights {
        x_proj_weight: &xp,
        dt_projs_weight: &dp,
        dt_projs_bias: &db,
        a_logs: &al,
        ds: &ds,
    };
    for (batch, h, ww) in [(0, 4, 5), (2, 0, 5), (2, 4, 0)] {
        for mode in [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi] {
            let s = Ss2dScanShape {
                batch,
                dim: d,
                h,
                w: ww,
                dstate: n,
                dt_rank: r,
                mode,
                channel_first: batch % 2 == 0,
            };
            let mut y: Vec<f32> = vec![];
            ss2d_scan_unfused(&s, &w, &[], &mut y, Parallelism::Threads(2)).unwrap();
        }
    }
    // dim = 0: all weights empty.
    let s = Ss2dScanShape {
        batch: 1,
        dim: 0,
        h: 3,
        w: 3,
        dstate: 1,
        dt_rank: 1,
        mode: ScanMode::Cross2d,
        channel_first: true,
    };
    let e: [f32; 0] = [];
    let w0 = Ss2dScanWeights {
        x_proj_weight: &e,
        dt_projs_weight: &e,
        dt_projs_bias: &e,
        a_logs: &e,
        ds: &e,
    };
    let mut y: Vec<f32> = vec![];
    ss2d_scan_unfused(&s, &w0, &[], &mut y, Parallelism::Sequential).unwrap();
}
