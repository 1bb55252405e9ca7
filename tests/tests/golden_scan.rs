//! Every case of `golden/selective_scan` (mamba's `selective_scan_ref`, float32 upstream output):
//! the kernel and the f32 reference within 1e-5 x max|ref|, for `out` and
//! `last_state`. Each case also runs channel-last and with a reversed walk over flipped inputs.
#![forbid(unsafe_code)]

use ss2d_conformance::{assert_close, golden_cases, Golden, Problem};
use ss2d_core::{BcLayout, Layout, ScanShape, Walk};

const TOL_KERNEL: f64 = 1e-5;
const TOL_REFERENCE: f64 = 1e-5;

fn bc_layout(g: &Golden, which: &str) -> BcLayout {
    match g.meta(&format!("{which}_layout")) {
        "DN" => BcLayout::Constant,
        "BNL" => BcLayout::Grouped(1),
        "BGNL" => BcLayout::Grouped(g.meta_usize("G")),
        other => panic!("{}: unknown {which}_layout {other:?}", g.name),
    }
}

/// The golden case as a [`Problem`] (channel-first, forward walk).
fn problem(g: &Golden) -> Problem {
    let (bsz, d, l, n) = (
        g.meta_usize("Bsz"),
        g.meta_usize("D"),
        g.meta_usize("L"),
        g.meta_usize("N"),
    );
    let shape = ScanShape {
        batch: bsz,
        dim: d,
        seqlen: l,
        dstate: n,
        b: bc_layout(g, "B"),
        c: bc_layout(g, "C"),
        layout: Layout::ChannelFirst,
    };
    // Cross-check the metadata against the tensors' own shapes.
    assert_eq!(g.shape("u"), [bsz, d, l], "{}: u", g.name);
    assert_eq!(g.shape("delta"), [bsz, d, l], "{}: delta", g.name);
    assert_eq!(g.shape("A"), [d, n], "{}: A", g.name);
    assert_eq!(g.shape("out"), [bsz, d, l], "{}: out", g.name);
    for which in ["B", "C"] {
        let want: Vec<usize> = match bc_layout(g, which) {
            BcLayout::Constant => vec![d, n],
            BcLayout::Grouped(_) if g.meta(&format!("{which}_layout")) == "BNL" => {
                vec![bsz, n, l]
            }
            BcLayout::Grouped(k) => vec![bsz, k, n, l],
        };
        assert_eq!(g.shape(which), want, "{}: {which}", g.name);
    }
    let shapes = g.meta_json("shapes");
    for (name, (shape, _)) in &g.tensors {
        let meta_shape: Vec<usize> = shapes[name]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no shape for {name} in metadata", g.name))
            .iter()
            .map(|v| v.as_u64().expect("size") as usize)
            .collect();
        assert_eq!(&meta_shape, shape, "{}: shape of {name}", g.name);
    }
    let opt = |flag: &str, name: &str| -> Option<Vec<f32>> {
        let has = g.meta_bool(flag);
        assert_eq!(
            has,
            g.opt(name).is_some(),
            "{}: {flag} vs tensor {name}",
            g.name
        );
        g.opt(name).map(<[f32]>::to_vec)
    };
    let want_final = g.meta_bool("return_last_state");
    assert_eq!(want_final, g.opt("last_state").is_some(), "{}", g.name);
    if want_final {
        assert_eq!(g.shape("last_state"), [bsz, d, n], "{}: last_state", g.name);
    }
    Problem {
        shape,
        walk: Walk::forward(l),
        u: g.tensor("u").to_vec(),
        delta: g.tensor("delta").to_vec(),
        a: g.tensor("A").to_vec(),
        b: g.tensor("B").to_vec(),
        c: g.tensor("C").to_vec(),
        d_skip: opt("has_D", "D"),
        z: opt("has_z", "z"),
        delta_bias: opt("has_delta_bias", "delta_bias"),
        delta_softplus: g.meta_bool("delta_softplus"),
        initial_state: None,
        want_final,
    }
}

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
