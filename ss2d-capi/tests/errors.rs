//! Refusals through the C ABI: NULL pointers, bad shapes, bad strides, overlapping outputs,
//! bad values and misbehaving host callbacks; nothing is written on error and
//! `ss2d_last_error` names the problem. Plus the introspection calls.

mod common;

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use common::*;
use ss2d_capi::ss2d_status::*;
use ss2d_capi::*;

const B: usize = 2;
const D: usize = 8;
const L: usize = 9;
const N: usize = 4;

struct Bufs {
    u: Vec<f32>,
    delta: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    out: Vec<f32>,
    st: Vec<f32>,
}

fn bufs() -> Bufs {
    Bufs {
        u: rand_vec(B * D * L, 1, -1.0, 1.0),
        delta: rand_vec(B * D * L, 2, -2.0, 0.5),
        a: rand_vec(D * N, 3, -2.0, -0.1),
        b: rand_vec(B * 2 * N * L, 4, -1.0, 1.0),
        c: rand_vec(D * N, 5, -1.0, 1.0),
        out: vec![9.0; B * D * L],
        st: vec![9.0; B * D * N],
    }
}

/// Changes the descriptors of a scan (inputs, out, final_state).
type Edit = dyn Fn(&mut [ss2d_const_tensor; 5], &mut ss2d_tensor, &mut ss2d_tensor);

/// Runs a scan on `bf` with descriptors adjusted by `edit`; returns the status and checks
/// that nothing was written when it is not OK.
fn scan_with(bf: &mut Bufs, edit: &Edit, ex: &ss2d_exec) -> i32 {
    let mut ins = [
        cten(&bf.u, &[B, D, L]),
        cten(&bf.delta, &[B, D, L]),
        cten(&bf.a, &[D, N]),
        cten(&bf.b, &[B, 2, N, L]),
        cten(&bf.c, &[D, N]),
    ];
    let mut ot = mten(&mut bf.out, &[B, D, L]);
    let mut stt = mten(&mut bf.st, &[B, D, N]);
    edit(&mut ins, &mut ot, &mut stt);
    let raw = ss2d_scan_inputs {
        u: &ins[0],
        delta: &ins[1],
        A: &ins[2],
        B: &ins[3],
        C: &ins[4],
        D: null(),
        z: null(),
        delta_bias: null(),
        initial_state: null(),
        delta_softplus: 1,
    };
    let before_u = bits(&bf.u);
    // SAFETY: descriptors over live buffers (or deliberately bad ones that the library must
    // refuse before touching memory).
    let s = unsafe { ss2d_selective_scan(&raw, &ot, &stt, ex) };
    assert_eq!(bits(&bf.u), before_u, "an input was written");
    if s != 0 {
        assert!(bf.out.iter().all(|&v| v == 9.0), "out written on error");
        assert!(bf.st.iter().all(|&v| v == 9.0), "state written on error");
        assert!(!last_error().is_empty());
    }
    s
}

fn expect(status: ss2d_status, s: i32, words: &str) {
    assert_eq!(
        s,
        status as i32,
        "got {} ({}), want {status:?}",
        status_name(s),
        last_error()
    );
    assert!(
        last_error().contains(words),
        "message `{}` lacks `{words}`",
        last_error()
    );
}

#[test]
fn valid_call_then_each_refusal() {
    let mut bf = bufs();
    ok(scan_with(&mut bf, &|_, _, _| {}, &exec_seq()));
    assert_eq!(last_error(), "");
    let ex = exec_seq();
    let cases: Vec<(ss2d_status, &str, Box<Edit>)> = vec![
        (
            SS2D_NULL_POINTER,
            "`u`",
            Box::new(|i, _, _| i[0].data = null()),
        ),
        (
            SS2D_NULL_POINTER,
            "`out`",
            Box::new(|_, o, _| o.data = null_mut()),
        ),
        (
            SS2D_BAD_SHAPE,
            "`delta`",
            Box::new(|i, _, _| i[1].shape[2] = L - 1),
        ),
        (
            SS2D_BAD_SHAPE,
            "`A`",
            Box::new(|i, _, _| i[2].shape[0] = D + 1),
        ),
        (SS2D_BAD_SHAPE, "rank", Box::new(|i, _, _| i[0].ndim = 2)),
        (SS2D_BAD_SHAPE, "ndim 7", Box::new(|i, _, _| i[0].ndim = 7)),
        (
            SS2D_BAD_SHAPE,
            "groups",
            Box::new(|i, _, _| {
                // 3 groups do not divide 8 channels.
                i[3].shape[1] = 3;
            }),
        ),
        (
            SS2D_BAD_SHAPE,
            "d_state",
            Box::new(|i, _, _| {
                i[2].shape[1] = 0;
                i[4].shape[1] = 0;
                i[3].shape[2] = 0;
            }),
        ),
        (SS2D_BAD_SHAPE, "`out`", Box::new(|_, o, _| o.shape[0] = 1)),
        (
            SS2D_BAD_SHAPE,
            "`final_state`",
            Box::new(|_, _, s| {
                s.shape[2] = N + 1;
                s.strides[..3].copy_from_slice(&[(D * (N + 1)) as isize, (N + 1) as isize, 1]);
            }),
        ),
        (
            SS2D_BAD_STRIDE,
            "aligned",
            Box::new(|i, _, _| {
                i[0].data = (i[0].data as usize + 1) as *const f32;
            }),
        ),
        (
            SS2D_BAD_STRIDE,
            "share memory",
            Box::new(|_, o, _| o.strides[2] = 0),
        ),
        (
            SS2D_BAD_STRIDE,
            "share memory",
            Box::new(|_, o, _| {
                // Channels one apart but positions stepping by 1 too: aliasing.
                o.strides[1] = 1;
                o.strides[2] = 1;
                o.strides[0] = 32;
            }),
        ),
        (
            SS2D_BAD_STRIDE,
            "address space",
            Box::new(|i, _, _| i[1].strides[0] = isize::MAX / 2),
        ),
        (
            SS2D_OVERLAP,
            "overlaps",
            Box::new(|i, o, _| {
                // out over u's memory.
                o.data = i[0].data as *mut f32;
            }),
        ),
        (
            SS2D_OVERLAP,
            "overlaps",
            Box::new(|_, o, s| {
                // final_state inside out.
                s.data = o.data;
            }),
        ),
    ];
    for (status, words, edit) in cases {
        let mut bf = bufs();
        let s = scan_with(&mut bf, edit.as_ref(), &ex);
        expect(status, s, words);
    }
}

#[test]
fn null_arguments() {
    let mut bf = bufs();
    let mut ot = mten(&mut bf.out, &[B, D, L]);
    // SAFETY: NULL inputs are refused.
    let s = unsafe { ss2d_selective_scan(null(), &ot, null(), null()) };
    expect(SS2D_NULL_POINTER, s, "inputs");
    let u = cten(&bf.u, &[B, D, L]);
    let raw = ss2d_scan_inputs {
        u: &u,
        delta: null(),
        A: null(),
        B: null(),
        C: null(),
        D: null(),
        z: null(),
        delta_bias: null(),
        initial_state: null(),
        delta_softplus: 0,
    };
    // SAFETY: NULL required tensors are refused.
    let s = unsafe { ss2d_selective_scan(&raw, &ot, null(), null()) };
    expect(SS2D_NULL_POINTER, s, "delta");
    // SAFETY: a NULL output descriptor is refused.
    let s = unsafe { ss2d_selective_scan(&raw, null(), null(), null()) };
    assert_eq!(s, SS2D_NULL_POINTER as i32);
    let mut n = 0usize;
    // SAFETY: NULL result pointer refused.
    let s = unsafe { ss2d_scan_scratch_size(&raw, null(), null_mut()) };
    assert_eq!(s, SS2D_NULL_POINTER as i32);
    // SAFETY: NULL inputs refused.
    let s = unsafe { ss2d_scan_scratch_size(null(), null(), &mut n) };
    assert_eq!(s, SS2D_NULL_POINTER as i32);
    // An empty tensor may have NULL data: an empty batch is a valid problem.
    let a = cten(&bf.a, &[D, N]);
    let c = cten(&bf.c, &[D, N]);
    let empty = |shape: &[usize]| {
        let mut t = cten(&[], shape);
        t.data = null();
        t
    };
    let (ue, de, be) = (empty(&[0, D, L]), empty(&[0, D, L]), empty(&[0, N, L]));
    let raw = ss2d_scan_inputs {
        u: &ue,
        delta: &de,
        A: &a,
        B: &be,
        C: &c,
        ..raw
    };
    ot.shape[0] = 0;
    ot.data = null_mut();
    // SAFETY: empty tensors touch no memory.
    ok(unsafe { ss2d_selective_scan(&raw, &ot, null(), &exec_host(2, 0)) });
}

#[test]
fn bad_values() {
    // scan_mode out of range for the cross ops.
    let x = vec![0.0f32; 2 * 3 * 4 * 5];
    let mut xs = vec![0.0f32; 4 * x.len()];
    let xt = cten(&x, &[2, 3, 4, 5]);
    let xst = mten(&mut xs, &[2, 4, 3, 20]);
    // SAFETY: live buffers.
    let s = unsafe { ss2d_cross_scan(&xt, &xst, 3, 0, null()) };
    expect(SS2D_BAD_VALUE, s, "scan_mode");
    // SAFETY: live buffers.
    ok(unsafe { ss2d_cross_scan(&xt, &xst, 2, 0, null()) });
    // Wrong L on the sequence side.
    let xst = mten(&mut xs, &[2, 4, 3, 21]);
    // SAFETY: shapes are checked before any access.
    let s = unsafe { ss2d_cross_scan(&xt, &xst, 0, 0, null()) };
    expect(SS2D_BAD_SHAPE, s, "`xs`");
}

/// A host loop that skips the last item.
unsafe extern "C" fn skip_last(_: *mut c_void, n: usize, item: ss2d_item_fn, ctx: *mut c_void) {
    for i in 0..n.saturating_sub(1) {
        // SAFETY: the library's item function and context.
        unsafe { item.unwrap()(ctx, i) };
    }
}

/// A host loop that runs item 0 twice and an index past the end.
unsafe extern "C" fn run_twice(_: *mut c_void, n: usize, item: ss2d_item_fn, ctx: *mut c_void) {
    for i in 0..n {
        // SAFETY: as above.
        unsafe { item.unwrap()(ctx, i) };
    }
    // SAFETY: as above (the library must refuse both gracefully).
    unsafe { item.unwrap()(ctx, 0) };
    // SAFETY: as above.
    unsafe { item.unwrap()(ctx, n) };
}

#[test]
fn misbehaving_parallel_for_is_reported() {
    for (f, words) in [
        (
            skip_last as unsafe extern "C" fn(_, _, _, _),
            "without running item",
        ),
        (run_twice, "more than once"),
    ] {
        let ex = ss2d_exec {
            parallel_for: Some(f),
            n_items: 3,
            ..exec_seq()
        };
        let mut bf = bufs();
        let mut ins = [
            cten(&bf.u, &[B, D, L]),
            cten(&bf.delta, &[B, D, L]),
            cten(&bf.a, &[D, N]),
            cten(&bf.b, &[B, 2, N, L]),
            cten(&bf.c, &[D, N]),
        ];
        ins[3].shape[1] = 2;
        let ot = mten(&mut bf.out, &[B, D, L]);
        let raw = ss2d_scan_inputs {
            u: &ins[0],
            delta: &ins[1],
            A: &ins[2],
            B: &ins[3],
            C: &ins[4],
            D: null(),
            z: null(),
            delta_bias: null(),
            initial_state: null(),
            delta_softplus: 1,
        };
        // SAFETY: live buffers; the host loop misbehaves, which must be reported.
        let s = unsafe { ss2d_selective_scan(&raw, &ot, null(), &ex) };
        expect(SS2D_CALLBACK, s, words);
    }
}

#[test]
fn introspection() {
    // SAFETY: static strings.
    let v = unsafe { CStr::from_ptr(ss2d_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    // SAFETY: static string.
    let isa = unsafe { CStr::from_ptr(ss2d_isa()) }.to_str().unwrap();
    assert!(
        ["x86-64", "x86-64-v3", "x86-64-v4", "baseline"].contains(&isa),
        "{isa}"
    );
    ok(ss2d_cpu_check());
    assert_eq!(status_name(0), "SS2D_OK");
    assert_eq!(status_name(SS2D_OVERLAP as i32), "SS2D_OVERLAP");
    assert_eq!(status_name(SS2D_INTERNAL as i32), "SS2D_INTERNAL");
    assert_eq!(status_name(77), "SS2D_UNKNOWN");
    // The last error is per thread.
    let mut bf = bufs();
    let _ = scan_with(&mut bf, &|i, _, _| i[0].data = null(), &exec_seq());
    assert!(last_error().contains("`u`"));
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");
}
