//! Every case of `golden/selective_scan` (mamba's `selective_scan_ref`, float32 upstream output):
//! the kernel and the f32 reference within 1e-5 x max|ref|, for `out` and
//! `last_state`. Each case also runs channel-last and with a reversed walk over flipped inputs.
#![forbid(unsafe_code)]

use ss2d_conformance::golden_problem::scan_problem as problem;
use ss2d_conformance::{assert_close, golden_cases, Golden};
use ss2d_core::{Layout, Walk};

const TOL_KERNEL: f64 = 1e-5;
const TOL_REFERENCE: f64 = 1e-5;

/// Compares an (out, last_state) pair, given in channel-first positions, with the golden.
fn check(
    g: &Golden,
    what: &str,
    out: &[f32],
    state: Option<&[f32]>,
    tol: f64,
    worst: &mut f64,
) -> String {
    let r = assert_close(
        &format!("{} [{what}] out", g.name),
        out,
        g.tensor("out"),
        tol,
    );
    *worst = worst.max(r);
    let mut msg = format!("out {r:.2e}");
    if let Some(want) = g.opt("last_state") {
        let got = state.expect("final state requested");
        let r = assert_close(&format!("{} [{what}] last_state", g.name), got, want, tol);
        *worst = worst.max(r);
        msg += &format!(", last_state {r:.2e}");
    }
    msg
}

fn cases() -> Vec<Golden> {
    let v: Vec<Golden> = golden_cases("selective_scan")
        .iter()
        .map(|p| Golden::load(p))
        .collect();
    // The README lists 14 cases; fail loudly if the set shrinks.
    assert!(
        v.len() >= 14,
        "only {} selective_scan golden cases",
        v.len()
    );
    v
}

#[test]
fn golden_kernel_and_reference() {
    let mut worst_k = 0.0f64;
    let mut worst_r = 0.0f64;
    for g in cases() {
        let p = problem(&g);
        let (out, st) = p.run();
        let mk = check(&g, "kernel", &out, st.as_deref(), TOL_KERNEL, &mut worst_k);
        let (out, st) = p.reference::<f32>();
        let mr = check(
            &g,
            "reference f32",
            &out,
            st.as_deref(),
            TOL_REFERENCE,
            &mut worst_r,
        );
        println!("{:40} kernel: {mk}; reference f32: {mr}", g.name);
    }
    println!("worst err/max|ref|: kernel {worst_k:.3e}, reference f32 {worst_r:.3e}");
}

#[test]
fn golden_channel_last() {
    let mut worst = 0.0f64;
    for g in cases() {
        let p = problem(&g).with_layout(Layout::ChannelLast);
        let (out, st) = p.run();
        let out = p.out_to_channel_first(&out);
        let m = check(
            &g,
            "channel-last",
            &out,
            st.as_deref(),
            TOL_KERNEL,
            &mut worst,
        );
        let (rout, rst) = p.reference::<f32>();
        let rout = p.out_to_channel_first(&rout);
        let mut worst_r = 0.0;
        check(
            &g,
            "channel-last reference f32",
            &rout,
            rst.as_deref(),
            TOL_REFERENCE,
            &mut worst_r,
        );
        println!("{:40} channel-last kernel: {m}", g.name);
    }
    println!("worst err/max|ref| channel-last: {worst:.3e}");
}

#[test]
fn golden_reversed_walk() {
    let mut worst = 0.0f64;
    for g in cases() {
        let p = problem(&g);
        let l = p.shape.seqlen;
        let flip: Vec<usize> = (0..l).rev().collect();
        // Flipped inputs walked backwards visit the original sequence in order.
        let q = p.permuted(&flip, Walk::reverse(l));
        let (out, st) = q.run();
        let out = p.unpermute_out(&out, &flip);
        let m = check(&g, "reverse", &out, st.as_deref(), TOL_KERNEL, &mut worst);
        // The same in channel-last layout.
        let q = p.with_layout(Layout::ChannelLast);
        let qr = q.permuted(&flip, Walk::reverse(l));
        let (out, st) = qr.run();
        let out = q.out_to_channel_first(&q.unpermute_out(&out, &flip));
        let m2 = check(
            &g,
            "reverse channel-last",
            &out,
            st.as_deref(),
            TOL_KERNEL,
            &mut worst,
        );
        // And the reference walked the same way.
        let (rout, rst) = p.permuted(&flip, Walk::reverse(l)).reference::<f32>();
        let rout = p.unpermute_out(&rout, &flip);
        let mut worst_r = 0.0;
        check(
            &g,
            "reverse reference f32",
            &rout,
            rst.as_deref(),
            TOL_REFERENCE,
            &mut worst_r,
        );
        println!("{:40} reverse: {m}; reverse channel-last: {m2}", g.name);
    }
    println!("worst err/max|ref| reversed walks: {worst:.3e}");
}
