//! Golden `selective_scan` cases (mamba's `selective_scan_ref`) as [`Problem`]s, shared by the
//! libtest golden tests and the single-threaded conformance runner.

use ss2d_core::{BcLayout, Layout, ScanShape, Walk};

use crate::{Golden, Problem};

pub fn bc_layout(g: &Golden, which: &str) -> BcLayout {
    match g.meta(&format!("{which}_layout")) {
        "DN" => BcLayout::Constant,
        "BNL" => BcLayout::Grouped(1),
        "BGNL" => BcLayout::Grouped(g.meta_usize("G")),
        other => panic!("{}: unknown {which}_layout {other:?}", g.name),
    }
}

/// The golden case as a [`Problem`] (channel-first, forward walk). Panics, naming the case,
/// when the metadata and the tensors disagree.
pub fn scan_problem(g: &Golden) -> Problem {
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
