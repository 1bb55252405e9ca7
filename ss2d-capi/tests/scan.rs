//! `ss2d_selective_scan` through the C ABI: every golden case (mamba's `selective_scan_ref`),
//! in every exec mode (bitwise identical), with strided and channel-last tensors, caller
//! scratch, and a split-and-resume through `initial_state` / `final_state`.

mod common;

use std::ptr::null;

use common::*;
use ss2d_capi::*;

/// The golden tensors of one selective-scan case, ready to describe.
struct Case {
    name: String,
    g: Golden,
}

impl Case {
    fn all() -> Vec<Case> {
        golden_cases("selective_scan")
            .into_iter()
            .map(|p| Case {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                g: Golden::load(&p),
            })
            .collect()
    }

    fn opt(&self, name: &str) -> Option<ss2d_const_tensor> {
        self.g
            .has(name)
            .then(|| cten(self.g.tensor(name), self.g.shape(name)))
    }

    fn req(&self, name: &str) -> ss2d_const_tensor {
        cten(self.g.tensor(name), self.g.shape(name))
    }

    fn dims(&self) -> (usize, usize, usize, usize) {
        let u = self.g.shape("u");
        (u[0], u[1], u[2], self.g.shape("A")[1])
    }
}

/// Descriptors kept alive for an `ss2d_scan_inputs`.
struct Ins {
    t: Vec<Option<ss2d_const_tensor>>,
    softplus: bool,
}

impl Ins {
    fn from_case(c: &Case) -> Ins {
        Ins {
            t: vec![
                Some(c.req("u")),
                Some(c.req("delta")),
                Some(c.req("A")),
                Some(c.req("B")),
                Some(c.req("C")),
                c.opt("D"),
                c.opt("z"),
                c.opt("delta_bias"),
                None,
            ],
            softplus: c.g.meta_bool("delta_softplus"),
        }
    }

    fn raw(&self) -> ss2d_scan_inputs {
        let p = |i: usize| {
            self.t[i]
                .as_ref()
                .map_or(null(), |t| t as *const ss2d_const_tensor)
        };
        ss2d_scan_inputs {
            u: p(0),
            delta: p(1),
            A: p(2),
            B: p(3),
            C: p(4),
            D: p(5),
            z: p(6),
            delta_bias: p(7),
            initial_state: p(8),
            delta_softplus: self.softplus as i32,
        }
    }
}

fn run_dense(
    ins: &Ins,
    dims: (usize, usize, usize, usize),
    exec: &ss2d_exec,
) -> (Vec<f32>, Vec<f32>) {
    let (b, d, l, n) = dims;
    let mut out = vec![f32::NAN; b * d * l];
    let mut st = vec![f32::NAN; b * d * n];
    let ot = mten(&mut out, &[b, d, l]);
    let stt = mten(&mut st, &[b, d, n]);
    let raw = ins.raw();
    // SAFETY: every descriptor points to live buffers of its shape.
    ok(unsafe { ss2d_selective_scan(&raw, &ot, &stt, exec) });
    (out, st)
}

#[test]
fn golden_cases_in_every_exec_mode() {
    let cases = Case::all();
    assert_eq!(cases.len(), 14, "golden selective-scan cases");
    for c in &cases {
        let ins = Ins::from_case(c);
        let want = c.g.tensor("out");
        let (seq_out, seq_st) = run_dense(&ins, c.dims(), &exec_seq());
        let e = rel_err(&seq_out, want);
        assert!(e <= 1e-5, "{}: out rel err {e:e}", c.name);
        if c.g.has("last_state") {
            let e = rel_err(&seq_st, c.g.tensor("last_state"));
            assert!(e <= 1e-5, "{}: last_state rel err {e:e}", c.name);
        }
        for (label, ex) in all_execs() {
            let (o, s) = run_dense(&ins, c.dims(), &ex);
            assert_eq!(bits(&o), bits(&seq_out), "{}: out, exec {label}", c.name);
            assert_eq!(bits(&s), bits(&seq_st), "{}: state, exec {label}", c.name);
        }
    }
}

#[test]
fn null_exec_is_sequential() {
    let c = &Case::all()[2];
    let ins = Ins::from_case(c);
    let (b, d, l, _) = c.dims();
    let mut out = vec![0.0; b * d * l];
    let ot = mten(&mut out, &[b, d, l]);
    let raw = ins.raw();
    // SAFETY: live buffers; NULL final_state and exec are allowed.
    ok(unsafe { ss2d_selective_scan(&raw, &ot, null(), null()) });
    let (want, _) = run_dense(&ins, c.dims(), &exec_seq());
    assert_eq!(bits(&out), bits(&want));
}

#[test]
fn strided_and_channel_last_tensors() {
    for c in &Case::all() {
        let (b, d, l, n) = c.dims();
        let dense = Ins::from_case(c);
        let (want, want_st) = run_dense(&dense, c.dims(), &exec_seq());
        let bdl = [b, d, l];
        // Channel-last in place: (B, L, D) buffers as (B, D, L) views.
        let cl = |name: &str| Strided::new(c.g.tensor(name), &bdl, &[0, 2, 1], 1, 0, &[]);
        // Non-dense: every other element, padded rows, the sequence axis reversed.
        let odd = |name: &str, shape: &[usize]| {
            let perm: Vec<usize> = (0..shape.len()).rev().collect();
            Strided::new(c.g.tensor(name), shape, &perm, 2, 3, &[shape.len() - 1])
        };
        for variant in ["channel_last", "gathered"] {
            let gathered = variant == "gathered";
            let mk = |name: &str| {
                if gathered {
                    odd(name, c.g.shape(name))
                } else {
                    cl(name)
                }
            };
            let u = mk("u");
            let delta = mk("delta");
            let z = c.g.has("z").then(|| mk("z"));
            let bt = odd("B", c.g.shape("B"));
            let ct = odd("C", c.g.shape("C"));
            let mut ins = Ins::from_case(c);
            ins.t[0] = Some(u.c());
            ins.t[1] = Some(delta.c());
            ins.t[6] = z.as_ref().map(Strided::c);
            if gathered {
                ins.t[3] = Some(bt.c());
                ins.t[4] = Some(ct.c());
            }
            let zeros = vec![0.0f32; b * d * l];
            let mut out = if gathered {
                Strided::new(&zeros, &bdl, &[1, 2, 0], 3, 1, &[1])
            } else {
                Strided::new(&zeros, &bdl, &[0, 2, 1], 1, 0, &[])
            };
            let zst = vec![0.0f32; b * d * n];
            let mut st = Strided::new(&zst, &[b, d, n], &[2, 0, 1], 2, 0, &[0]);
            let (ot, stt) = (out.m(), st.m());
            for (label, ex) in all_execs() {
                let raw = ins.raw();
                // SAFETY: descriptors over live buffers.
                ok(unsafe { ss2d_selective_scan(&raw, &ot, &stt, &ex) });
                let got = out.read_rm();
                if gathered {
                    // Gathered into the channel-first layout: bitwise the dense result.
                    assert_eq!(bits(&got), bits(&want), "{} {variant} {label}", c.name);
                } else {
                    let e = rel_err(&got, &want);
                    assert!(e <= 1e-6, "{} {variant} {label}: {e:e}", c.name);
                }
                let e = rel_err(&st.read_rm(), &want_st);
                assert!(e <= 1e-6, "{} {variant} {label}: state {e:e}", c.name);
                assert_eq!(out.touched_outside(), 0, "{} {variant}", c.name);
                assert_eq!(st.touched_outside(), 0, "{} {variant}", c.name);
            }
        }
    }
}

#[test]
fn caller_scratch_matches_the_query() {
    for c in &Case::all() {
        let ins = Ins::from_case(c);
        let (want, _) = run_dense(&ins, c.dims(), &exec_seq());
        for (label, ex0) in all_execs() {
            let raw = ins.raw();
            let mut need = usize::MAX;
            // SAFETY: valid inputs, exec and output pointer.
            ok(unsafe { ss2d_scan_scratch_size(&raw, &ex0, &mut need) });
            assert!(need > 0 && need < 1 << 26, "{label}: {need}");
            let mut scratch = vec![f32::NAN; need];
            let ex = ss2d_exec {
                scratch: scratch.as_mut_ptr(),
                scratch_len: need,
                ..ex0
            };
            let (got, _) = run_dense(&ins, c.dims(), &ex);
            assert_eq!(bits(&got), bits(&want), "{} {label}", c.name);

            // One element short: refused, nothing written.
            let (b, d, l, _) = c.dims();
            let mut out = vec![7.0f32; b * d * l];
            let ot = mten(&mut out, &[b, d, l]);
            let short = ss2d_exec {
                scratch_len: need - 1,
                ..ex
            };
            // SAFETY: as above.
            let s = unsafe { ss2d_selective_scan(&raw, &ot, null(), &short) };
            assert_eq!(s, ss2d_status::SS2D_SCRATCH_TOO_SMALL as i32, "{label}");
            assert!(last_error().contains("scratch"), "{}", last_error());
            assert!(out.iter().all(|&v| v == 7.0));
        }
    }
}

#[test]
fn split_and_resume_through_the_state() {
    let (b, d, l, n, g) = (2usize, 40usize, 77usize, 16usize, 4usize);
    let u = rand_vec(b * d * l, 1, -1.0, 1.0);
    let delta = rand_vec(b * d * l, 2, -3.0, 0.5);
    let a = rand_vec(d * n, 3, -3.0, -0.1);
    let bb = rand_vec(b * g * n * l, 4, -1.0, 1.0);
    let cc = rand_vec(b * g * n * l, 5, -1.0, 1.0);
    let z = rand_vec(b * d * l, 6, -2.0, 2.0);
    let init = rand_vec(b * d * n, 7, -0.5, 0.5);
    let bias = rand_vec(d, 8, -1.0, 0.0);
    let dd = rand_vec(d, 9, 0.5, 1.5);
    // Views of positions [p0, p1) of the (B, ?, L)-shaped tensors: strided, not dense.
    let sub = |v: &[f32], mid: usize, p0: usize, p1: usize| -> ss2d_const_tensor {
        let mut t = cten(&v[p0..], &[b, mid, p1 - p0]);
        t.strides[..3].copy_from_slice(&[(mid * l) as isize, l as isize, 1]);
        t
    };
    let sub4 = |v: &[f32], p0: usize, p1: usize| -> ss2d_const_tensor {
        let mut t = cten(&v[p0..], &[b, g, n, p1 - p0]);
        t.strides[..4].copy_from_slice(&[(g * n * l) as isize, (n * l) as isize, l as isize, 1]);
        t
    };
    let (at, biast, dt) = (cten(&a, &[d, n]), cten(&bias, &[d]), cten(&dd, &[d]));
    let initt = cten(&init, &[b, d, n]);
    let run =
        |p0: usize, p1: usize, init: *const ss2d_const_tensor, out: &mut [f32], st: &mut [f32]| {
            let (ut, det, zt) = (
                sub(&u, d, p0, p1),
                sub(&delta, d, p0, p1),
                sub(&z, d, p0, p1),
            );
            let (bt, ct) = (sub4(&bb, p0, p1), sub4(&cc, p0, p1));
            let raw = ss2d_scan_inputs {
                u: &ut,
                delta: &det,
                A: &at,
                B: &bt,
                C: &ct,
                D: &dt,
                z: &zt,
                delta_bias: &biast,
                initial_state: init,
                delta_softplus: 1,
            };
            let mut ot = mten(&mut out[p0..], &[b, d, p1 - p0]);
            ot.strides[..3].copy_from_slice(&[(d * l) as isize, l as isize, 1]);
            let stt = mten(st, &[b, d, n]);
            // SAFETY: descriptors over live buffers; `out` views are disjoint per call.
            ok(unsafe { ss2d_selective_scan(&raw, &ot, &stt, &exec_host(2, 0)) });
        };
    let mut full = vec![0.0f32; b * d * l];
    let mut full_st = vec![0.0f32; b * d * n];
    run(0, l, &initt, &mut full, &mut full_st);
    let mut parts = vec![0.0f32; b * d * l];
    let mut mid_st = vec![0.0f32; b * d * n];
    let mut end_st = vec![0.0f32; b * d * n];
    run(0, 30, &initt, &mut parts, &mut mid_st);
    let mid = mid_st.clone();
    let midt = cten(&mid, &[b, d, n]);
    run(30, l, &midt, &mut parts, &mut end_st);
    assert_eq!(bits(&parts), bits(&full));
    assert_eq!(bits(&end_st), bits(&full_st));
    // And the state is not ignored: a zero initial state gives a different result.
    let mut zero = vec![0.0f32; b * d * l];
    run(0, l, null(), &mut zero, &mut vec![0.0; b * d * n]);
    assert_ne!(bits(&zero), bits(&full));
}
