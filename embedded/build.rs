//! Host side of the firmware build:
//! 1. `memory.x` for the target's QEMU board (mps2-an386/an500 for ARMv7E-M, mps2-an505 for
//!    ARMv8-M Mainline);
//! 2. the golden selective-scan cases that fit the board: every file of
//!    `../testdata/golden/selective_scan/` up to [`MAX_GOLDEN_BYTES`];
//! 3. generated cases (layouts and walks the goldens lack, more state sizes): inputs from a
//!    fixed PRNG, expected outputs from ss2d-core's f64 reference scan run here on the host,
//!    written as safetensors files in `OUT_DIR`;
//! 4. `cases.rs`, the list the firmware embeds with `include_bytes!`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use ss2d_core::{reference, BcLayout, Layout, ScanArgs, ScanShape, Walk};

/// Golden files larger than this stay out of the firmware (a board's flash, not QEMU's 4 MiB,
/// is the limit that matters).
const MAX_GOLDEN_BYTES: u64 = 64 * 1024;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target = env::var("TARGET").expect("TARGET");

    // cortex-m-rt's link.x includes memory.x from the linker search path.
    let memory = if target.starts_with("thumbv8m") {
        // mps2-an505 boots secure: code in the secure alias of SSRAM1, data in SSRAM2/3's.
        "MEMORY\n{\n  FLASH : ORIGIN = 0x10000000, LENGTH = 4M\n  RAM : ORIGIN = 0x38000000, LENGTH = 4M\n}\n"
    } else {
        // mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7): SSRAM1 and SSRAM2/3.
        "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n  RAM : ORIGIN = 0x20000000, LENGTH = 4M\n}\n"
    };
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");

    let golden_dir = manifest.join("../testdata/golden/selective_scan");
    println!("cargo:rerun-if-changed={}", golden_dir.display());
    let mut golden: Vec<(String, PathBuf)> = fs::read_dir(&golden_dir)
        .unwrap_or_else(|e| panic!("golden data at {}: {e}", golden_dir.display()))
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .filter(|p| fs::metadata(p).expect("golden file metadata").len() <= MAX_GOLDEN_BYTES)
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    golden.sort();
    assert!(
        !golden.is_empty(),
        "no golden case of at most {MAX_GOLDEN_BYTES} bytes in {}",
        golden_dir.display()
    );

    let mut cases = golden;
    for g in GENERATED {
        let path = out.join(format!("{}.safetensors", g.name));
        fs::write(&path, generate(g)).expect("write generated case");
        cases.push((g.name.to_string(), path));
    }

    let mut rs = String::from("/// Embedded cases: (name, safetensors bytes).\npub static CASES: &[(&str, &Aligned<[u8]>)] = &[\n");
    for (name, path) in &cases {
        writeln!(
            rs,
            "    ({name:?}, &Aligned(*include_bytes!({:?}))),",
            abs(path)
        )
        .unwrap();
    }
    rs.push_str("];\n");
    fs::write(out.join("cases.rs"), rs).expect("write cases.rs");
}

fn abs(p: &Path) -> String {
    fs::canonicalize(p)
        .expect("canonicalize")
        .to_string_lossy()
        .into_owned()
}

/// A generated case: shape, options and walk.
struct Gen {
    name: &'static str,
    batch: usize,
    dim: usize,
    seqlen: usize,
    dstate: usize,
    /// B and C groups; 0 = constant (D, N).
    groups: usize,
    channel_last: bool,
    reverse: bool,
    softplus: bool,
    /// D, z, delta_bias, initial_state.
    extras: bool,
    seed: u64,
}

const GENERATED: &[Gen] = &[
    // The first firmware case: 16 channels, 64 steps, N = 4, channel-last this time.
    Gen {
        name: "gen_b1_d16_l64_n4_g1_channel_last",
        batch: 1,
        dim: 16,
        seqlen: 64,
        dstate: 4,
        groups: 1,
        channel_last: true,
        reverse: false,
        softplus: true,
        extras: true,
        seed: 1,
    },
    // Reversed walk, constant B/C, N = 2, more steps than one chunk.
    Gen {
        name: "gen_b1_d12_l70_n2_const_reverse",
        batch: 1,
        dim: 12,
        seqlen: 70,
        dstate: 2,
        groups: 0,
        channel_last: false,
        reverse: true,
        softplus: true,
        extras: true,
        seed: 2,
    },
    // N = 8 (a block size the goldens lack), two groups, a partial panel, initial state.
    Gen {
        name: "gen_b2_d10_l40_n8_g2_init",
        batch: 2,
        dim: 10,
        seqlen: 40,
        dstate: 8,
        groups: 2,
        channel_last: false,
        reverse: false,
        softplus: true,
        extras: true,
        seed: 3,
    },
    // N = 16 + odd sizes, channel-last, reversed, no options.
    Gen {
        name: "gen_b1_d5_l9_n16_g1_plain_cl_rev",
        batch: 1,
        dim: 5,
        seqlen: 9,
        dstate: 16,
        groups: 1,
        channel_last: true,
        reverse: true,
        softplus: false,
        extras: false,
        seed: 4,
    },
    // N = 1 (VMamba's d_state) on full 16-channel panels: the steady-state instruction count.
    Gen {
        name: "gen_b1_d16_l64_n1_g1",
        batch: 1,
        dim: 16,
        seqlen: 64,
        dstate: 1,
        groups: 1,
        channel_last: false,
        reverse: false,
        softplus: true,
        extras: true,
        seed: 5,
    },
];

/// xorshift64*: uniform values in `[lo, hi)`.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        lo + (hi - lo) * (r as f32 / (1u64 << 24) as f32)
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// The case's safetensors bytes: inputs, `out` and `last_state` from the f64 reference.
fn generate(g: &Gen) -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ g.seed);
    let (bdl, dn, bdn) = (
        g.batch * g.dim * g.seqlen,
        g.dim * g.dstate,
        g.batch * g.dim * g.dstate,
    );
    let bc_layout = if g.groups == 0 {
        BcLayout::Constant
    } else {
        BcLayout::Grouped(g.groups)
    };
    let bc_len = if g.groups == 0 {
        dn
    } else {
        g.batch * g.groups * g.dstate * g.seqlen
    };
    let u = rng.vec(bdl, -1.0, 1.0);
    let delta = rng.vec(bdl, -3.0, 1.0);
    let a = rng.vec(dn, -2.0, -0.1);
    let b = rng.vec(bc_len, -1.0, 1.0);
    let c = rng.vec(bc_len, -1.0, 1.0);
    let d = rng.vec(g.dim, -1.0, 1.0);
    let z = rng.vec(bdl, -2.0, 2.0);
    let bias = rng.vec(g.dim, -1.0, 0.5);
    let init = rng.vec(bdn, -0.5, 0.5);
    let shape = ScanShape {
        batch: g.batch,
        dim: g.dim,
        seqlen: g.seqlen,
        dstate: g.dstate,
        b: bc_layout,
        c: bc_layout,
        layout: if g.channel_last {
            Layout::ChannelLast
        } else {
            Layout::ChannelFirst
        },
    };
    let args = ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &b,
        c: &c,
        d_skip: g.extras.then_some(&d[..]),
        z: g.extras.then_some(&z[..]),
        delta_bias: g.extras.then_some(&bias[..]),
        delta_softplus: g.softplus,
        initial_state: g.extras.then_some(&init[..]),
    };
    let walk = if g.reverse {
        Walk::reverse(g.seqlen)
    } else {
        Walk::forward(g.seqlen)
    };
    let mut out = vec![0.0f64; bdl];
    let mut last = vec![0.0f64; bdn];
    reference::selective_scan::<f64>(&shape, &walk, &args, &mut out, Some(&mut last))
        .unwrap_or_else(|e| panic!("reference scan of {}: {e}", g.name));
    let out: Vec<f32> = out.iter().map(|&x| x as f32).collect();
    let last: Vec<f32> = last.iter().map(|&x| x as f32).collect();

    let (l, bsz, dim, n) = (g.seqlen, g.batch, g.dim, g.dstate);
    let seq = if g.channel_last {
        vec![bsz, l, dim]
    } else {
        vec![bsz, dim, l]
    };
    let bc_shape = if g.groups == 0 {
        vec![dim, n]
    } else {
        vec![bsz, g.groups, n, l]
    };
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![
        ("u", seq.clone(), &u),
        ("delta", seq.clone(), &delta),
        ("A", vec![dim, n], &a),
        ("B", bc_shape.clone(), &b),
        ("C", bc_shape, &c),
        ("out", seq.clone(), &out),
        ("last_state", vec![bsz, dim, n], &last),
    ];
    if g.extras {
        tensors.push(("D", vec![dim], &d));
        tensors.push(("z", seq, &z));
        tensors.push(("delta_bias", vec![dim], &bias));
        tensors.push(("initial_state", vec![bsz, dim, n], &init));
    }
    let layout = if g.groups == 0 { "DN" } else { "BGNL" };
    let meta = [
        ("Bsz", bsz.to_string()),
        ("D", dim.to_string()),
        ("L", l.to_string()),
        ("N", n.to_string()),
        ("G", g.groups.max(1).to_string()),
        ("B_layout", layout.to_string()),
        ("C_layout", layout.to_string()),
        ("delta_softplus", g.softplus.to_string()),
        (
            "layout",
            if g.channel_last { "BLD" } else { "BDL" }.to_string(),
        ),
        (
            "walk",
            if g.reverse { "reverse" } else { "forward" }.to_string(),
        ),
        (
            "source",
            "ss2d-core reference::selective_scan::<f64> (embedded/build.rs)".to_string(),
        ),
    ];
    safetensors(&meta, &tensors)
}

/// Serializes f32 tensors in the safetensors format (header padded to 8 bytes).
fn safetensors(meta: &[(&str, String)], tensors: &[(&str, Vec<usize>, &[f32])]) -> Vec<u8> {
    let mut header = String::from("{\"__metadata__\":{");
    for (i, (k, v)) in meta.iter().enumerate() {
        write!(header, "{}\"{k}\":\"{v}\"", if i > 0 { "," } else { "" }).unwrap();
    }
    header.push('}');
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "{name}: shape and data disagree"
        );
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        write!(
            header,
            ",\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}",
            dims.join(","),
            data.len()
        )
        .unwrap();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(data);
    bytes
}
