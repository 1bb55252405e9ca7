//! Long sequences with long memory: the compounding-error check for the vector `exp`.
//!
//! `L = 4096`, `D = 2 * LANES + 3` (two full panels and a ragged one), `dt ~ 1e-3` (through
//! `delta_bias = softplus^-1(1e-3)`), `A = -(1..=N)`: `dA = exp(dt * A)` sits within ~1e-3 of 1,
//! so the state remembers ~1/(dt |A|) ~ 1000 steps and a relative bias of `exp` near 0 would be
//! amplified by that factor. No `D` skip and no gate, so `out` is the state contribution alone
//! (a skip term would dominate max|ref| and hide state error).
#![forbid(unsafe_code)]

use ss2d_conformance::{check_close, diff, lcg, softplus_inv, Problem};
use ss2d_core::{BcLayout, Layout, ScanShape, Walk, MAX_LANES as LANES};

const L: usize = 4096;
const TOL: f64 = 1e-5;

/// `dc`: u, B, C ~ U(0.5, 1) (the state builds up to its steady state ~ u B / |A|, the worst
/// case for a biased `exp`); otherwise u, B, C ~ U(-1, 1).
fn problem(dstate: usize, dc: bool, layout: Layout, seed: u64) -> Problem {
    let dim = 2 * LANES + 3;
    let mut g = lcg(seed);
    let (lo, hi) = if dc { (0.5, 1.0) } else { (-1.0, 1.0) };
    let bias = softplus_inv(1e-3) as f32;
    let shape = ScanShape {
        batch: 1,
        dim,
        seqlen: L,
        dstate,
        b: BcLayout::Grouped(1),
        c: BcLayout::Grouped(1),
        layout: Layout::ChannelFirst,
    };
    let a: Vec<f32> = (0..dim)
        .flat_map(|_| (1..=dstate).map(|n| -(n as f32)))
        .collect();
    let p = Problem {
        shape,
        walk: Walk::forward(L),
        u: g.fill(dim * L, lo, hi),
        // softplus(bias + delta) in ~[0.82e-3, 1.22e-3].
        delta: g.fill(dim * L, -0.2, 0.2),
        a,
        b: g.fill(dstate * L, lo, hi),
        c: g.fill(dstate * L, lo, hi),
        d_skip: None,
        z: None,
        delta_bias: Some(vec![bias; dim]),
        delta_softplus: true,
        initial_state: None,
        want_final: true,
    };
    p.with_layout(layout)
}

#[test]
fn long_sequence_against_f64_reference() {
    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    for dstate in [16, 1] {
        for dc in [false, true] {
            for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
                let p = problem(dstate, dc, layout, 4096 + dstate as u64 + dc as u64);
                let (out, st) = p.run();
                let (rout, rst) = p.reference::<f64>();
                let (fout, fst) = p.reference::<f32>();
                let st = st.expect("state");
                let rst = rst.expect("state");
                let name = format!(
                    "N={dstate:2} {} {layout:?} D={} L={L}",
                    if dc { "dc    " } else { "random" },
                    p.shape.dim
                );
                let d_out = diff(&out, &rout);
                let d_st = diff(&st, &rst);
                let f_out = diff(&fout, &rout);
                let f_st = diff(&fst.expect("state"), &rst);
                println!(
                    "{name}: kernel err/max|ref| out {:.3e} (max|ref| {:.3e}), final state {:.3e} \
                     (max|ref| {:.3e}); f32 reference: out {:.3e}, final state {:.3e}",
                    d_out.ratio(),
                    d_out.max_ref,
                    d_st.ratio(),
                    d_st.max_ref,
                    f_out.ratio(),
                    f_st.ratio()
                );
                worst = worst.max(d_out.ratio()).max(d_st.ratio());
                for r in [
                    check_close(&format!("{name} out"), &out, &rout, TOL, 0.0),
                    check_close(&format!("{name} final state"), &st, &rst, TOL, 0.0),
                ] {
                    if let Err(m) = r {
                        failures.push(m);
                    }
                }
            }
        }
    }
    println!("worst kernel err/max|ref| over long sequences: {worst:.3e} (tolerance {TOL:.0e})");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
