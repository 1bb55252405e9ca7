//! `ss2d_fused_scan`, `ss2d_cross_scan` and `ss2d_cross_merge` through the C ABI: golden
//! data (VMamba's `debug.y_merged`, `cross_scan_fn` / `cross_merge_fn`), bitwise equality with
//! `ss2d-std` and across exec modes, channel-last and strided tensors, caller scratch.

mod common;

use common::*;
use ss2d_capi::*;
use ss2d_std::cross::ScanMode;
use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

/// A logical view over data stored row-major in `phys` shape, whose axes are the logical
/// axes in memory order `perm` (outermost first).
fn permuted(data: &[f32], phys: &[usize], perm: &[usize]) -> ss2d_const_tensor {
    let rs = rm_strides(phys);
    let mut t = cten(data, phys);
    for (j, &ax) in perm.iter().enumerate() {
        t.shape[ax] = phys[j];
        t.strides[ax] = rs[j];
    }
    t
}

fn permuted_mut(data: &mut [f32], phys: &[usize], perm: &[usize]) -> ss2d_tensor {
    let rs = rm_strides(phys);
    let mut t = mten(data, phys);
    for (j, &ax) in perm.iter().enumerate() {
        t.shape[ax] = phys[j];
        t.strides[ax] = rs[j];
    }
    t
}

fn mode_of(name: &str) -> i32 {
    match name {
        "cross2d" => 0,
        "unidi" => 1,
        "bidi" => 2,
        m => panic!("mode {m}"),
    }
}

struct FusedCase {
    name: String,
    g: Golden,
    x: Vec<f32>,
    dims: (usize, usize, usize, usize),
}

fn fused_cases() -> Vec<FusedCase> {
    golden_cases("ss2d")
        .into_iter()
        .filter_map(|p| {
            let g = Golden::load(&p);
            if !g.has("debug.y_merged") || !g.has("debug.conv2d_out") {
                return None;
            }
            let s = g.shape("debug.conv2d_out").to_vec();
            let x = g
                .tensor("debug.conv2d_out")
                .iter()
                .map(|&v| silu(v))
                .collect();
            Some(FusedCase {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                g,
                x,
                dims: (s[0], s[1], s[2], s[3]),
            })
        })
        .collect()
}

/// Runs the fused scan with `x` given by `xt`, into `y` described by `yt`.
fn fused(c: &FusedCase, xt: &ss2d_const_tensor, yt: &ss2d_tensor, ex: &ss2d_exec) -> i32 {
    let w = |n: &str| cten(c.g.tensor(n), c.g.shape(n));
    let (xw, dtw, dtb, al, ds) = (
        w("x_proj_weight"),
        w("dt_projs_weight"),
        w("dt_projs_bias"),
        w("A_logs"),
        w("Ds"),
    );
    let inp = ss2d_fused_inputs {
        x: xt,
        x_proj_weight: &xw,
        dt_projs_weight: &dtw,
        dt_projs_bias: &dtb,
        A_logs: &al,
        Ds: &ds,
        scan_mode: mode_of(c.g.meta("scan_mode")),
    };
    // SAFETY: descriptors over live buffers of their shapes.
    unsafe { ss2d_fused_scan(&inp, yt, ex) }
}

fn std_fused(c: &FusedCase, channel_first: bool, x: &[f32]) -> Vec<f32> {
    let (b, d, h, w) = c.dims;
    let shape = Ss2dScanShape {
        batch: b,
        dim: d,
        h,
        w,
        dstate: c.g.shape("A_logs")[1],
        dt_rank: c.g.shape("dt_projs_weight")[2],
        mode: ScanMode::from_name(c.g.meta("scan_mode")).unwrap(),
        channel_first,
    };
    let wts = Ss2dScanWeights {
        x_proj_weight: c.g.tensor("x_proj_weight"),
        dt_projs_weight: c.g.tensor("dt_projs_weight"),
        dt_projs_bias: c.g.tensor("dt_projs_bias"),
        a_logs: c.g.tensor("A_logs"),
        ds: c.g.tensor("Ds"),
    };
    let mut y = vec![0.0f32; x.len()];
    // The C ABI applies SS2D_ISA before its first call; the comparison runs at the same level.
    ss2d_std::cpu::level_from_env().expect("SS2D_ISA");
    ss2d_std::fused::ss2d_scan(&shape, &wts, x, &mut y, Parallelism::Sequential).unwrap();
    y
}

/// (B, D, H, W) row-major -> (B, H, W, D) row-major.
fn to_cl(v: &[f32], (b, d, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let mut o = vec![0.0; v.len()];
    for bi in 0..b {
        for di in 0..d {
            for p in 0..h * w {
                o[(bi * h * w + p) * d + di] = v[(bi * d + di) * h * w + p];
            }
        }
    }
    o
}

#[test]
fn fused_scan_golden_and_bitwise_with_ss2d_std() {
    let cases = fused_cases();
    assert!(cases.len() >= 8, "{} fused golden cases", cases.len());
    for c in &cases {
        let (b, d, h, w) = c.dims;
        let dims4 = [b, d, h, w];
        let want = c.g.tensor("debug.y_merged");
        let std_cf = std_fused(c, true, &c.x);
        let xcl = to_cl(&c.x, c.dims);
        let std_cl = std_fused(c, false, &xcl);
        for (label, ex) in all_execs() {
            // Channel-first, dense.
            let mut y = vec![f32::NAN; c.x.len()];
            let xt = cten(&c.x, &dims4);
            let yt = mten(&mut y, &dims4);
            ok(fused(c, &xt, &yt, &ex));
            let e = rel_err(&y, want);
            assert!(e <= 1e-5, "{} {label}: y_merged rel err {e:e}", c.name);
            assert_eq!(bits(&y), bits(&std_cf), "{} {label}: != ss2d-std", c.name);

            // Channel-last, dense (B, H, W, D) buffers as (B, D, H, W) views: in place.
            let mut ycl = vec![f32::NAN; c.x.len()];
            let xt = permuted(&xcl, &[b, h, w, d], &[0, 2, 3, 1]);
            let yt = permuted_mut(&mut ycl, &[b, h, w, d], &[0, 2, 3, 1]);
            ok(fused(c, &xt, &yt, &ex));
            assert_eq!(
                bits(&ycl),
                bits(&std_cl),
                "{} {label}: cl != ss2d-std",
                c.name
            );

            // Strided: gathered into channel-first, bitwise the channel-first result.
            let xs = Strided::new(&c.x, &dims4, &[3, 1, 0, 2], 2, 1, &[2]);
            let zeros = vec![0.0f32; c.x.len()];
            let mut ys = Strided::new(&zeros, &dims4, &[2, 0, 3, 1], 1, 5, &[3]);
            let yt = ys.m();
            ok(fused(c, &xs.c(), &yt, &ex));
            assert_eq!(
                bits(&ys.read_rm()),
                bits(&std_cf),
                "{} {label}: strided",
                c.name
            );
            assert_eq!(ys.touched_outside(), 0);
        }
    }
}

#[test]
fn fused_scan_caller_scratch() {
    let cases = fused_cases();
    let c = &cases[0];
    let (b, d, h, w) = c.dims;
    let dims4 = [b, d, h, w];
    let want = std_fused(c, true, &c.x);
    for (label, ex0) in all_execs() {
        let xt = cten(&c.x, &dims4);
        let wv = |n: &str| cten(c.g.tensor(n), c.g.shape(n));
        let (xw, dtw, dtb, al, ds) = (
            wv("x_proj_weight"),
            wv("dt_projs_weight"),
            wv("dt_projs_bias"),
            wv("A_logs"),
            wv("Ds"),
        );
        let inp = ss2d_fused_inputs {
            x: &xt,
            x_proj_weight: &xw,
            dt_projs_weight: &dtw,
            dt_projs_bias: &dtb,
            A_logs: &al,
            Ds: &ds,
            scan_mode: 0,
        };
        let mut need = 0usize;
        // SAFETY: valid pointers.
        ok(unsafe { ss2d_fused_scan_scratch_size(&inp, &ex0, &mut need) });
        let mut scratch = vec![f32::NAN; need];
        let ex = ss2d_exec {
            scratch: scratch.as_mut_ptr(),
            scratch_len: need,
            ..ex0
        };
        let mut y = vec![0.0f32; c.x.len()];
        let yt = mten(&mut y, &dims4);
        ok(fused(c, &xt, &yt, &ex));
        assert_eq!(bits(&y), bits(&want), "{label}");
        let short = ss2d_exec {
            scratch_len: need - 1,
            ..ex
        };
        let mut y2 = vec![3.0f32; c.x.len()];
        let yt2 = mten(&mut y2, &dims4);
        assert_eq!(
            fused(c, &xt, &yt2, &short),
            ss2d_status::SS2D_SCRATCH_TOO_SMALL as i32
        );
        assert!(y2.iter().all(|&v| v == 3.0));
        // Scratch overlapping the output is refused.
        let bad = ss2d_exec {
            scratch: y2.as_mut_ptr(),
            scratch_len: need.min(y2.len()),
            ..ex0
        };
        let yt3 = mten(&mut y2, &dims4);
        assert_eq!(
            fused(c, &xt, &yt3, &bad),
            ss2d_status::SS2D_OVERLAP as i32,
            "{}",
            last_error()
        );
    }
}

/// Memory orders of the golden cross-scan tensors (logical axes, outermost first).
fn plane_perm(cf: bool, obo: bool, flat: bool) -> Vec<usize> {
    match (cf, obo, flat) {
        (true, false, false) => vec![0, 1, 2, 3],
        (false, false, false) => vec![0, 2, 3, 1],
        (true, false, true) => vec![0, 1, 2],
        (false, false, true) => vec![0, 2, 1],
        (true, true, false) => vec![0, 1, 2, 3, 4],
        (false, true, false) => vec![0, 3, 4, 1, 2],
        (true, true, true) => vec![0, 1, 2, 3],
        (false, true, true) => vec![0, 3, 1, 2],
    }
}

fn seq_perm(cf: bool, five: bool) -> Vec<usize> {
    match (cf, five) {
        (true, false) => vec![0, 1, 2, 3],
        (false, false) => vec![0, 3, 1, 2],
        (true, true) => vec![0, 1, 2, 3, 4],
        (false, true) => vec![0, 3, 4, 1, 2],
    }
}

#[test]
fn cross_scan_and_merge_golden_in_every_layout() {
    let files = golden_cases("cross_scan");
    assert_eq!(files.len(), 17);
    for p in files {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let g = Golden::load(&p);
        let in_cf = g.meta_bool("in_channel_first");
        let out_cf = g.meta_bool("out_channel_first");
        let obo = g.meta_bool("one_by_one");
        let mode: i32 = g.meta("scans").parse().unwrap();
        let xt = permuted(g.tensor("x"), g.shape("x"), &plane_perm(in_cf, obo, false));
        // Physical shapes from the logical sizes (one golden `xs` carries an odd view shape).
        let xshape = xt.shape[..xt.ndim].to_vec();
        let b = xshape[0];
        let (c, h, w) = if obo {
            (xshape[2], xshape[3], xshape[4])
        } else {
            (xshape[1], xshape[2], xshape[3])
        };
        let l = h * w;
        let xs_phys = if out_cf { [b, 4, c, l] } else { [b, l, 4, c] };
        let yst = permuted(g.tensor("ys"), g.shape("ys"), &seq_perm(out_cf, true));
        let mut seq_scan: Option<Vec<f32>> = None;
        let mut seq_merge: Option<Vec<f32>> = None;
        for (label, ex) in all_execs() {
            // Scan into the golden's physical layout (found from the strides, in place).
            let mut xs = vec![f32::NAN; g.tensor("xs").len()];
            let xst = permuted_mut(&mut xs, &xs_phys, &seq_perm(out_cf, false));
            // SAFETY: descriptors over live buffers.
            ok(unsafe { ss2d_cross_scan(&xt, &xst, mode, obo as i32, &ex) });
            assert_eq!(bits(&xs), bits(g.tensor("xs")), "{name} {label}: scan");
            let first = seq_scan.get_or_insert_with(|| xs.clone());
            assert_eq!(bits(first), bits(&xs));

            let mut y = vec![f32::NAN; g.tensor("y").len()];
            let yt = permuted_mut(&mut y, g.shape("y"), &plane_perm(in_cf, obo, true));
            // SAFETY: as above.
            ok(unsafe { ss2d_cross_merge(&yst, &yt, mode, obo as i32, &ex) });
            let want = g.tensor("y");
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let err = y
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err <= 1e-6 * scale, "{name} {label}: merge err {err:e}");
            let first = seq_merge.get_or_insert_with(|| y.clone());
            assert_eq!(bits(first), bits(&y), "{name} {label}: merge not bitwise");
        }
        // Strided (gathered / scattered) views give the same bits; xs as (B, 4, C, H, W).
        // The logical (row-major) x, read through the permuted view.
        let xrm: Vec<f32> = {
            let rs = rm_strides(&xt.shape[..xt.ndim]);
            (0..g.tensor("x").len())
                .map(|i| {
                    let off: isize = (0..xt.ndim)
                        .map(|ax| ((i as isize / rs[ax]) % xt.shape[ax] as isize) * xt.strides[ax])
                        .sum();
                    g.tensor("x")[off as usize]
                })
                .collect()
        };
        let nd = xshape.len();
        let xs_str = Strided::new(
            &xrm,
            &xshape,
            &(0..nd).rev().collect::<Vec<_>>(),
            2,
            1,
            &[nd - 1],
        );
        let zeros = vec![0.0f32; b * 4 * c * h * w];
        let mut out5 = Strided::new(&zeros, &[b, 4, c, h, w], &[4, 2, 0, 1, 3], 1, 2, &[1]);
        let ot = out5.m();
        // SAFETY: as above.
        ok(unsafe { ss2d_cross_scan(&xs_str.c(), &ot, mode, obo as i32, &exec_host(2, 0)) });
        // Logical (B, 4, C, L) of the golden in channel-first order.
        let want_cf: Vec<f32> = {
            let xs_phys = g.tensor("xs");
            let mut v = vec![0.0f32; xs_phys.len()];
            for bi in 0..b {
                for k in 0..4 {
                    for ci in 0..c {
                        for s in 0..l {
                            let src = if out_cf {
                                ((bi * 4 + k) * c + ci) * l + s
                            } else {
                                ((bi * l + s) * 4 + k) * c + ci
                            };
                            v[((bi * 4 + k) * c + ci) * l + s] = xs_phys[src];
                        }
                    }
                }
            }
            v
        };
        assert_eq!(
            bits(&out5.read_rm()),
            bits(&want_cf),
            "{name}: strided scan"
        );
        assert_eq!(out5.touched_outside(), 0);
    }
}

#[test]
fn large_strided_tensors_are_gathered_and_scattered_in_parallel_parts() {
    // Big enough for several parts of the parallel gather / scatter (2^15 elements each).
    let (b, c, h, w) = (2usize, 48usize, 40usize, 37usize);
    let x = rand_vec(b * c * h * w, 11, -1.0, 1.0);
    let dims4 = [b, c, h, w];
    let mut want = vec![0.0f32; 4 * x.len()];
    let wt = mten(&mut want, &[b, 4, c, h * w]);
    // SAFETY: descriptors over live buffers.
    ok(unsafe { ss2d_cross_scan(&cten(&x, &dims4), &wt, 0, 0, &exec_seq()) });
    let xs = Strided::new(&x, &dims4, &[2, 0, 3, 1], 3, 2, &[0, 3]);
    for (label, ex) in all_execs() {
        let zeros = vec![0.0f32; want.len()];
        let mut out = Strided::new(&zeros, &[b, 4, c, h * w], &[3, 1, 0, 2], 2, 1, &[2]);
        let ot = out.m();
        // SAFETY: as above.
        ok(unsafe { ss2d_cross_scan(&xs.c(), &ot, 0, 0, &ex) });
        assert_eq!(bits(&out.read_rm()), bits(&want), "{label}");
        assert_eq!(out.touched_outside(), 0, "{label}");
    }
}

#[test]
fn large_fused_scan_channel_first_and_last_bitwise_with_ss2d_std() {
    let (b, d, h, w, n, r) = (1usize, 96usize, 28usize, 30usize, 4usize, 6usize);
    let x = rand_vec(b * d * h * w, 21, -1.0, 1.0);
    let xw = rand_vec(4 * (r + 2 * n) * d, 22, -0.1, 0.1);
    let dtw = rand_vec(4 * d * r, 23, -0.5, 0.5);
    let dtb = rand_vec(4 * d, 24, -4.0, -2.0);
    let al = rand_vec(4 * d * n, 25, 0.0, 2.7);
    let ds = rand_vec(4 * d, 26, 0.5, 1.5);
    for (mode, scan_mode) in [(ScanMode::Cross2d, 0), (ScanMode::Bidi, 2)] {
        for channel_first in [true, false] {
            let shape = Ss2dScanShape {
                batch: b,
                dim: d,
                h,
                w,
                dstate: n,
                dt_rank: r,
                mode,
                channel_first,
            };
            let wts = Ss2dScanWeights {
                x_proj_weight: &xw,
                dt_projs_weight: &dtw,
                dt_projs_bias: &dtb,
                a_logs: &al,
                ds: &ds,
            };
            let mut want = vec![0.0f32; x.len()];
            ss2d_std::cpu::level_from_env().expect("SS2D_ISA");
            ss2d_std::fused::ss2d_scan(&shape, &wts, &x, &mut want, Parallelism::Threads(2))
                .unwrap();
            // `x` holds (B, D, H, W) or (B, H, W, D) data; describe it as (B, D, H, W).
            let perm: &[usize] = if channel_first {
                &[0, 1, 2, 3]
            } else {
                &[0, 2, 3, 1]
            };
            let phys = if channel_first {
                [b, d, h, w]
            } else {
                [b, h, w, d]
            };
            let xt = permuted(&x, &phys, perm);
            let (xwt, dtwt, dtbt) = (
                cten(&xw, &[4, r + 2 * n, d]),
                cten(&dtw, &[4, d, r]),
                cten(&dtb, &[4, d]),
            );
            let (alt, dst) = (cten(&al, &[4 * d, n]), cten(&ds, &[4 * d]));
            let inp = ss2d_fused_inputs {
                x: &xt,
                x_proj_weight: &xwt,
                dt_projs_weight: &dtwt,
                dt_projs_bias: &dtbt,
                A_logs: &alt,
                Ds: &dst,
                scan_mode,
            };
            for (label, ex) in all_execs() {
                let mut y = vec![f32::NAN; x.len()];
                let yt = permuted_mut(&mut y, &phys, perm);
                // SAFETY: descriptors over live buffers.
                ok(unsafe { ss2d_fused_scan(&inp, &yt, &ex) });
                assert_eq!(bits(&y), bits(&want), "cf={channel_first} {mode:?} {label}");
            }
        }
    }
}
