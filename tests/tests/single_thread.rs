//! The single-threaded conformance run: no libtest, no thread spawn, everything on the calling
//! thread (`Parallelism::Sequential`, `ss2d_core` directly). It is what runs under QEMU user
//! emulation for targets this machine cannot execute (`.ci/aarch64.sh`: Debian's qemu-user 7.2
//! never returns from a `std::thread::spawn` + `join`, so neither libtest nor a rayon pool can
//! run there), and it runs natively with `cargo test` so it cannot rot.
//!
//! Groups (each must run at least one case; the summary prints cases, failures and the worst
//! `max|err| / max|ref|` per group):
//! - `golden scan`: every `selective_scan` golden, channel-first and channel-last, forward and
//!   as a reversed walk over flipped inputs, kernel within 1e-4 and the f32 reference within
//!   1e-5 of `max|ref|` (`out` and `last_state`);
//! - `properties`: seeded random problems against the f64 reference, cycling through every
//!   combination of `D`, `z`, `delta_bias`, softplus, initial and final state, both layouts,
//!   constant and grouped `B`/`C`, forward, reversed and 2D cross walks; `ss2d_std`'s
//!   sequential entry point bitwise equal to the core kernel;
//! - `split/resume`: a scan split at a random step and resumed from the state equals the
//!   one-pass scan bitwise (out and final state), and so do work-item splits run in sequence;
//! - `fused vs unfused`: the fused SS2D scan against the unfused composition (random shapes,
//!   every cross-scan mode, both layouts);
//! - `golden fused`: the fused scan against `debug.y_merged` of the SS2D goldens;
//! - `golden cross`: cross-scan bitwise and cross-merge bitwise against VMamba's own;
//! - `golden layer`: the SS2D layer (fast backend; the unfused backend too on small grids)
//!   against VMamba's SS2D forward.
//!
//! Golden data: `$SS2D_GOLDEN_DIR`, else `testdata/golden` of the repository.
//!
//! With arguments `compare GOT WANT TOL` it compares every tensor of GOT with the same-named
//! tensor of WANT instead (`max|got - want| <= TOL * max|want|`, NaN-propagating): the check
//! of the CLI's output under emulation, where no other tool of this workspace can run.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ss2d_conformance::golden_problem::scan_problem;
use ss2d_conformance::{
    check_bitwise, check_close, concat_axis, divisors, seq_axis, transpose, Golden, Lcg, Spec,
    WalkKind,
};
use ss2d_core::{BcLayout, Layout, Walk};
use ss2d_std::cross::{
    cross_merge, cross_merge_output_len, cross_scan, cross_scan_output_len, CrossDims, CrossOpts,
    ScanMode,
};
use ss2d_std::fused::ss2d_scan;
use ss2d_std::layer::{Backend, ForwardOptions, Ss2d, Ss2dConfig};
use ss2d_std::unfused::{ss2d_scan_unfused, Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

/// Kernel vs golden (float32 upstream output) and vs the f64 reference.
const TOL_KERNEL: f64 = 1e-4;
/// The f32 reference vs golden.
const TOL_REFERENCE: f64 = 1e-5;
/// Absolute floor against the f64 reference (outputs that are all ~0).
const ABS: f64 = 1e-8;
/// Random problems against the f64 reference: two passes over the 64 option combinations.
const PROPERTY_CASES: u64 = 128;
/// Random split-and-resume problems.
const SPLIT_CASES: u64 = 48;
/// Random fused-vs-unfused shapes.
const FUSED_CASES: u64 = 36;
/// Layer goldens longer than this run only the fast backend (the unfused one would dominate
/// the emulated run's time).
const UNFUSED_MAX_L: usize = 1000;

/// Result of one case: the worst `max|err| / max|ref|` it measured, or what failed.
type CaseResult = Result<f64, String>;

#[derive(Default)]
struct Group {
    cases: usize,
    failed: usize,
    worst: f64,
    secs: f64,
}

#[derive(Default)]
struct Runner {
    order: Vec<&'static str>,
    groups: HashMap<&'static str, Group>,
    failures: Vec<String>,
}

impl Runner {
    /// Runs one case; a panic inside it (a loader's or an `expect`) counts as its failure.
    fn case(&mut self, group: &'static str, name: &str, f: impl FnOnce() -> CaseResult) {
        if !self.groups.contains_key(group) {
            self.order.push(group);
        }
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("panicked: {msg}"))
        });
        let g = self.groups.entry(group).or_default();
        g.cases += 1;
        g.secs += t.elapsed().as_secs_f64();
        match r {
            // NaN (never produced by the checks) would not raise `worst`: make it loud.
            Ok(w) if w.is_nan() => {
                g.failed += 1;
                self.failures
                    .push(format!("[{group}] {name}: NaN error ratio"));
            }
            Ok(w) => g.worst = g.worst.max(w),
            Err(m) => {
                g.failed += 1;
                self.failures.push(format!("[{group}] {name}: {m}"));
            }
        }
    }

    /// Prints the summary; true when every group ran at least one case and nothing failed.
    fn report(&self, expected: &[&str]) -> bool {
        println!(
            "\n{:<20} {:>6} {:>7} {:>22} {:>8}",
            "group", "cases", "failed", "worst max|err|/max|ref|", "secs"
        );
        let mut ok = true;
        for name in expected {
            let g = self.groups.get(name);
            let (cases, failed, worst, secs) =
                g.map_or((0, 0, 0.0, 0.0), |g| (g.cases, g.failed, g.worst, g.secs));
            let flag = if cases == 0 {
                ok = false;
                "  <- no cases"
            } else if failed > 0 {
                ok = false;
                "  <- FAILED"
            } else {
                ""
            };
            println!("{name:<20} {cases:>6} {failed:>7} {worst:>22.3e} {secs:>8.2}{flag}");
        }
        for f in &self.failures {
            println!("FAIL {f}");
        }
        ok
    }
}

const GROUPS: [&str; 7] = [
    "golden scan",
    "properties",
    "split/resume",
    "fused vs unfused",
    "golden fused",
    "golden cross",
    "golden layer",
];

/// `$SS2D_GOLDEN_DIR`, else `testdata/golden` of the repository.
fn golden_root() -> PathBuf {
    std::env::var_os("SS2D_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden"))
}

/// The `*.safetensors` files of `group`, sorted; an unreadable or empty folder is one failed
/// case of `runner_group` (and no files).
fn golden_files(r: &mut Runner, runner_group: &'static str, group: &str) -> Vec<PathBuf> {
    let dir = golden_root().join(group);
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    if v.is_empty() {
        r.case(runner_group, &dir.display().to_string(), || {
            Err(format!(
                "no golden files in {} (set SS2D_GOLDEN_DIR)",
                dir.display()
            ))
        });
    }
    v
}

/// Loads a golden file; an unreadable one is a failed case of `group` (and `None`).
fn load(r: &mut Runner, group: &'static str, path: &Path) -> Option<Golden> {
    match catch_unwind(|| Golden::load(path)) {
        Ok(g) => Some(g),
        Err(_) => {
            r.case(group, &path.display().to_string(), || {
                Err("cannot load the golden file".into())
            });
            None
        }
    }
}

/// `check_close` for `out` and the optional state; the worse of the two ratios.
fn close_pair(
    what: &str,
    (out, st): (&[f32], Option<&[f32]>),
    (want, want_st): (&[f32], Option<&[f32]>),
    rel: f64,
) -> CaseResult {
    let mut w = check_close(&format!("{what} out"), out, want, rel, 0.0)?;
    match (st, want_st) {
        (Some(a), Some(b)) => w = w.max(check_close(&format!("{what} state"), a, b, rel, 0.0)?),
        (None, None) => {}
        _ => return Err(format!("{what}: final state presence differs")),
    }
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// Golden selective scans
// ---------------------------------------------------------------------------------------------

fn golden_scan(r: &mut Runner) {
    const G: &str = "golden scan";
    for path in golden_files(r, G, "selective_scan") {
        let Some(g) = load(r, G, &path) else {
            continue;
        };
        let want = (g.tensor("out"), g.opt("last_state"));
        let p = scan_problem(&g);
        let l = p.shape.seqlen;
        let flip: Vec<usize> = (0..l).rev().collect();
        for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
            let q = p.with_layout(layout);
            r.case(G, &format!("{} {layout:?} kernel", g.name), || {
                let (out, st) = q.run();
                close_pair(
                    "kernel",
                    (&q.out_to_channel_first(&out), st.as_deref()),
                    want,
                    TOL_KERNEL,
                )
            });
            r.case(G, &format!("{} {layout:?} reference f32", g.name), || {
                let (out, st) = q.reference::<f32>();
                let got = (&q.out_to_channel_first(&out)[..], st.as_deref());
                close_pair("reference f32", got, want, TOL_REFERENCE)
            });
            // Flipped inputs walked backwards visit the original sequence in order.
            r.case(G, &format!("{} {layout:?} reversed walk", g.name), || {
                let qr = q.permuted(&flip, Walk::reverse(l));
                let (out, st) = qr.run();
                let out = q.out_to_channel_first(&q.unpermute_out(&out, &flip));
                close_pair("reversed walk", (&out, st.as_deref()), want, TOL_KERNEL)
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random problems
// ---------------------------------------------------------------------------------------------

/// Lengths around the chunk (64) and lane boundaries.
const EDGE_LENGTHS: [usize; 10] = [1, 2, 7, 63, 64, 65, 127, 129, 257, 300];

fn bc(g: &mut Lcg, dim: usize, batch_groups: bool) -> BcLayout {
    if !batch_groups {
        return BcLayout::Constant;
    }
    let divs = divisors(dim);
    BcLayout::Grouped(divs[g.below(divs.len())])
}

/// Random problem `i`: options from the bits of `i` (so consecutive cases cover all 64
/// combinations), layout, walk and sizes from the generator.
fn random_spec(i: u64, g: &mut Lcg) -> Spec {
    let bit = |k: u32| i >> k & 1 == 1;
    let dim = 1 + g.below(40);
    let walk = match (i / 64 + i) % 3 {
        0 => WalkKind::Forward,
        1 => WalkKind::Reverse,
        _ => WalkKind::Cross {
            h: 1 + g.below(17),
            w: 1 + g.below(17),
            k: g.below(4),
        },
    };
    let seqlen = match walk {
        WalkKind::Cross { h, w, .. } => h * w,
        _ if g.below(4) == 0 => EDGE_LENGTHS[g.below(EDGE_LENGTHS.len())],
        _ => 1 + g.below(300),
    };
    let (grouped_b, grouped_c) = (g.below(4) != 0, g.below(4) != 0);
    let bc_layout = bc(g, dim, grouped_b);
    let c_layout = bc(g, dim, grouped_c);
    Spec {
        batch: 1 + g.below(2),
        dim,
        seqlen,
        dstate: 1 + g.below(20),
        b: bc_layout,
        c: c_layout,
        layout: if (i / 64 + i / 2).is_multiple_of(2) {
            Layout::ChannelFirst
        } else {
            Layout::ChannelLast
        },
        walk,
        has_d: bit(0),
        has_z: bit(1),
        has_bias: bit(2),
        softplus: bit(3),
        has_init: bit(4),
        want_final: bit(5),
        seed: g.next_u32() as u64,
    }
}

fn properties(r: &mut Runner) {
    const G: &str = "properties";
    let mut g = Lcg::new(0x5eed_0001);
    for i in 0..PROPERTY_CASES {
        let s = random_spec(i, &mut g);
        r.case(G, &format!("{s:?}"), || {
            let p = s.build();
            let (out, st) = p.run();
            let (rout, rst) = p.reference::<f64>();
            let mut w = check_close("out vs f64", &out, &rout, TOL_KERNEL, ABS)?;
            if let (Some(a), Some(b)) = (&st, &rst) {
                w = w.max(check_close("state vs f64", a, b, TOL_KERNEL, ABS)?);
            }
            // ss2d-std's entry point, sequential: the same kernel, bitwise.
            let mut sout = vec![f32::NAN; p.out_len()];
            let mut sst = p.want_final.then(|| vec![f32::NAN; p.state_len()]);
            ss2d_std::selective_scan(
                &p.shape,
                &p.walk,
                &p.args(),
                &mut sout,
                sst.as_deref_mut(),
                Parallelism::Sequential,
            )
            .map_err(|e| format!("ss2d_std::selective_scan: {e}"))?;
            check_bitwise("ss2d_std sequential out", &sout, &out)?;
            if let (Some(a), Some(b)) = (&sst, &st) {
                check_bitwise("ss2d_std sequential state", a, b)?;
            }
            Ok(w)
        });
    }
    // States beyond one register block (more than 16).
    for (i, dstate) in [17usize, 33, 64, 256].into_iter().enumerate() {
        let s = Spec {
            b: BcLayout::Grouped(2),
            c: BcLayout::Constant,
            layout: [Layout::ChannelFirst, Layout::ChannelLast][i % 2],
            walk: WalkKind::Cross { h: 7, w: 11, k: i },
            seed: 100 + i as u64,
            ..Spec::full(2, 18, 77, dstate)
        };
        r.case(G, &format!("{s:?}"), || {
            let p = s.build();
            let (out, st) = p.run();
            let (rout, rst) = p.reference::<f64>();
            let w = check_close("out vs f64", &out, &rout, TOL_KERNEL, ABS)?;
            let (a, b) = (st.ok_or("no state")?, rst.ok_or("no reference state")?);
            Ok(w.max(check_close("state vs f64", &a, &b, TOL_KERNEL, ABS)?))
        });
    }
}

fn split_resume(r: &mut Runner) {
    const G: &str = "split/resume";
    let mut g = Lcg::new(0x5eed_0002);
    for i in 0..SPLIT_CASES {
        let mut s = random_spec(i * 5 + 3, &mut g);
        s.want_final = true;
        let cut = g.next_u32() as usize;
        r.case(G, &format!("{s:?} cut {cut}"), || {
            let p = s.build();
            let l = p.shape.seqlen;
            let l1 = cut % (l + 1);
            let order: Vec<usize> = p.walk.iter().collect();
            let (out, st) = p.run();
            let st = st.ok_or("no final state")?;
            // The whole sequence permuted into walk order and scanned forward.
            let (wout, wst) = p.steps(0, l, p.initial_state.clone()).run();
            check_bitwise("walk order out", &p.unpermute_out(&wout, &order), &out)?;
            check_bitwise("walk order state", &wst.ok_or("no state")?, &st)?;
            // Split at l1 and resumed from the state.
            let (out1, st1) = p.steps(0, l1, p.initial_state.clone()).run();
            let (out2, st2) = p.steps(l1, l, st1).run();
            let (outer, inner) = seq_axis(&p.shape);
            let joined = concat_axis(&out1, &out2, outer, inner);
            let what = format!("split at {l1} of {l}");
            check_bitwise(&what, &p.unpermute_out(&joined, &order), &out)?;
            check_bitwise(&format!("{what} state"), &st2.ok_or("no state")?, &st)?;
            // Work items, run one after another in reverse order.
            let plan = p.plan();
            for count in [2usize, 3, 7, 1000] {
                let mut o = vec![f32::NAN; p.out_len()];
                let mut so = vec![f32::NAN; p.state_len()];
                let mut scratch = vec![f32::NAN; plan.scratch_len()];
                {
                    let mut items = plan
                        .split(&mut o, Some(&mut so), count)
                        .map_err(|e| format!("split({count}): {e}"))?;
                    let list: Vec<_> = items.items().collect();
                    for item in list.into_iter().rev() {
                        item.run(&mut scratch).map_err(|e| e.to_string())?;
                    }
                }
                check_bitwise(&format!("{count} work items out"), &o, &out)?;
                check_bitwise(&format!("{count} work items state"), &so, &st)?;
            }
            Ok(0.0)
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The fused SS2D scan
// ---------------------------------------------------------------------------------------------

struct Weights {
    xw: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    al: Vec<f32>,
    ds: Vec<f32>,
}

impl Weights {
    fn view(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.xw,
            dt_projs_weight: &self.dw,
            dt_projs_bias: &self.db,
            a_logs: &self.al,
            ds: &self.ds,
        }
    }
}

fn fused_vs_unfused(r: &mut Runner) {
    const G: &str = "fused vs unfused";
    let mut g = Lcg::new(0x5eed_0003);
    for i in 0..FUSED_CASES {
        let shape = Ss2dScanShape {
            batch: 1 + g.below(2),
            dim: 1 + g.below(40),
            h: 1 + g.below(9),
            w: 1 + g.below(9),
            dstate: 1 + g.below(6),
            dt_rank: 1 + g.below(4),
            mode: [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi][(i % 3) as usize],
            channel_first: (i / 3).is_multiple_of(2),
        };
        let (d, n, rk) = (shape.dim, shape.dstate, shape.dt_rank);
        let x = g.fill(shape.batch * d * shape.h * shape.w, -1.0, 1.0);
        let w = Weights {
            xw: g.fill(4 * (rk + 2 * n) * d, -0.5, 0.5),
            dw: g.fill(4 * d * rk, -0.5, 0.5),
            db: g.fill(4 * d, -4.0, -2.0),
            al: g.fill(4 * d * n, -1.0, 2.0),
            ds: g.fill(4 * d, 0.5, 1.5),
        };
        r.case(G, &format!("{shape:?}"), || {
            let mut y = vec![f32::NAN; x.len()];
            ss2d_scan(&shape, &w.view(), &x, &mut y, Parallelism::Sequential)
                .map_err(|e| format!("fused: {e}"))?;
            let mut want = vec![f32::NAN; x.len()];
            ss2d_scan_unfused(&shape, &w.view(), &x, &mut want, Parallelism::Sequential)
                .map_err(|e| format!("unfused: {e}"))?;
            check_close("fused vs unfused", &y, &want, TOL_KERNEL, 0.0)
        });
    }
}

fn golden_fused(r: &mut Runner) {
    const G: &str = "golden fused";
    for path in golden_files(r, G, "ss2d") {
        let Some(g) = load(r, G, &path) else {
            continue;
        };
        let mode = match ScanMode::from_name(g.meta("scan_mode")) {
            Ok(m) => m,
            Err(_) => continue, // cascade2d: the layer group covers it
        };
        let Some(want) = g.opt("debug.y_merged") else {
            continue; // large cases carry no intermediates
        };
        let shape = Ss2dScanShape {
            batch: g.meta_usize("Bsz"),
            dim: g.meta_usize("d_inner"),
            h: g.meta_usize("H"),
            w: g.meta_usize("W"),
            dstate: g.meta_usize("d_state"),
            dt_rank: g.meta_usize("dt_rank_resolved"),
            mode,
            channel_first: true,
        };
        let w = Ss2dScanWeights {
            x_proj_weight: g.tensor("x_proj_weight"),
            dt_projs_weight: g.tensor("dt_projs_weight"),
            dt_projs_bias: g.tensor("dt_projs_bias"),
            a_logs: g.tensor("A_logs"),
            ds: g.tensor("Ds"),
        };
        // x (B, D, L): direction 0 of `debug.us` (row-major in every mode).
        let (b, d, l) = (shape.batch, shape.dim, shape.h * shape.w);
        let us = g.tensor("debug.us");
        let x: Vec<f32> = (0..b)
            .flat_map(|bi| us[bi * 4 * d * l..(bi * 4 * d + d) * l].iter().copied())
            .collect();
        for cf in [true, false] {
            r.case(G, &format!("{} channel_first={cf}", g.name), || {
                let shape = Ss2dScanShape {
                    channel_first: cf,
                    ..shape
                };
                let (x, want) = if cf {
                    (x.clone(), want.to_vec())
                } else {
                    (transpose(&x, b, d, l), transpose(want, b, d, l))
                };
                let mut y = vec![f32::NAN; x.len()];
                ss2d_scan(&shape, &w, &x, &mut y, Parallelism::Sequential)
                    .map_err(|e| e.to_string())?;
                check_close("fused vs debug.y_merged", &y, &want, TOL_KERNEL, 0.0)
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-scan / merge and the layer
// ---------------------------------------------------------------------------------------------

fn golden_cross(r: &mut Runner) {
    const G: &str = "golden cross";
    for path in golden_files(r, G, "cross_scan") {
        let Some(g) = load(r, G, &path) else {
            continue;
        };
        if g.meta.get("kind").map(String::as_str) != Some("cross_scan") {
            continue;
        }
        r.case(G, &g.name, || {
            let dims = CrossDims {
                batch: g.meta_usize("Bsz"),
                channels: g.meta_usize("C"),
                h: g.meta_usize("H"),
                w: g.meta_usize("W"),
            };
            let scans = g.meta_usize("scans");
            let opts = CrossOpts {
                mode: ScanMode::from_scans(scans as i64).map_err(|e| format!("scans: {e}"))?,
                in_channel_first: g.meta_bool("in_channel_first"),
                out_channel_first: g.meta_bool("out_channel_first"),
                one_by_one: g.meta_bool("one_by_one"),
            };
            let len = cross_scan_output_len(dims, opts).map_err(|e| e.to_string())?;
            let mut xs = vec![f32::NAN; len];
            cross_scan(g.tensor("x"), dims, opts, &mut xs, Parallelism::Sequential)
                .map_err(|e| format!("cross_scan: {e}"))?;
            check_bitwise("cross_scan xs", &xs, g.tensor("xs"))?;
            let len = cross_merge_output_len(dims, opts).map_err(|e| e.to_string())?;
            let mut y = vec![f32::NAN; len];
            cross_merge(g.tensor("ys"), dims, opts, &mut y, Parallelism::Sequential)
                .map_err(|e| format!("cross_merge: {e}"))?;
            // Upstream's order of additions is reproduced exactly (plain IEEE f32 adds).
            check_bitwise("cross_merge y", &y, g.tensor("y"))?;
            Ok(0.0)
        });
    }
}

fn layer_config(g: &Golden) -> Result<Ss2dConfig, String> {
    let num = |k: &str| -> Result<usize, String> {
        g.meta(k).parse().map_err(|_| format!("metadata {k}"))
    };
    Ok(Ss2dConfig {
        d_model: num("d_model")?,
        d_state: num("d_state")?,
        ssm_ratio: g.meta("ssm_ratio").parse().map_err(|_| "ssm_ratio")?,
        dt_rank: g.meta("dt_rank").parse().map_err(|_| "dt_rank")?,
        d_conv: num("d_conv")?,
        conv_bias: g.meta_bool("conv_bias"),
        forward_type: g.meta("forward_type").to_string(),
        channel_first: g.meta_bool("channel_first"),
    })
}

fn golden_layer(r: &mut Runner) {
    const G: &str = "golden layer";
    for path in golden_files(r, G, "ss2d") {
        let Some(g) = load(r, G, &path) else {
            continue;
        };
        let mut backends = vec![Backend::Fast];
        if g.meta_usize("L") <= UNFUSED_MAX_L {
            backends.push(Backend::Unfused);
        }
        for backend in backends {
            r.case(G, &format!("{} {backend:?}", g.name), || {
                let layer = Ss2d::from_map(&layer_config(&g)?, "", &g.tensors)
                    .map_err(|e| format!("load: {e}"))?;
                let input = g.tensor("input");
                let grid = layer
                    .dims()
                    .grid_of(g.shape("input"))
                    .map_err(|e| e.to_string())?;
                let mut out = vec![f32::NAN; input.len()];
                let opts = ForwardOptions {
                    backend,
                    par: Parallelism::Sequential,
                    ..ForwardOptions::default()
                };
                layer
                    .forward_with(input, grid, &mut out, opts)
                    .map_err(|e| format!("forward: {e}"))?;
                check_close("layer output", &out, g.tensor("output"), TOL_KERNEL, 0.0)
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CLI output check
// ---------------------------------------------------------------------------------------------

/// `compare GOT WANT TOL`: every tensor of GOT (at least one) against the tensor of the same
/// name in WANT; exit status 0 when all match.
fn compare(args: &[String]) -> bool {
    let [got, want, tol] = args else {
        eprintln!("usage: single_thread compare GOT WANT TOL");
        return false;
    };
    let Ok(tol) = tol.parse::<f64>() else {
        eprintln!("compare: bad tolerance {tol:?}");
        return false;
    };
    let r = catch_unwind(|| {
        let (a, b) = (Golden::load(Path::new(got)), Golden::load(Path::new(want)));
        let mut names: Vec<&String> = a.tensors.keys().collect();
        names.sort();
        if names.is_empty() {
            println!("FAIL {got}: no tensors");
            return false;
        }
        let mut ok = true;
        for n in names {
            match b
                .tensors
                .contains_key(n)
                .then(|| check_close(n, a.tensor(n), b.tensor(n), tol, 0.0))
            {
                Some(Ok(w)) => println!("{}: {n} max|err|/max|ref| {w:.3e}", b.name),
                Some(Err(m)) => {
                    println!("FAIL {}: {m}", b.name);
                    ok = false;
                }
                None => {
                    println!("FAIL {}: no tensor {n} to compare with", b.name);
                    ok = false;
                }
            }
        }
        ok
    });
    r.unwrap_or(false)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("compare") {
        std::process::exit(if compare(&args[1..]) { 0 } else { 1 });
    }
    // libtest's flags (`--nocapture`, filters from `cargo test -- ...`) mean nothing here.
    if !args.is_empty() {
        println!("single_thread: ignoring arguments {args:?}");
    }
    println!(
        "single-threaded conformance run: {} {}, golden data {}",
        std::env::consts::ARCH,
        std::env::consts::OS,
        golden_root().display()
    );
    let t = Instant::now();
    let mut r = Runner::default();
    golden_scan(&mut r);
    properties(&mut r);
    split_resume(&mut r);
    fused_vs_unfused(&mut r);
    golden_fused(&mut r);
    golden_cross(&mut r);
    golden_layer(&mut r);
    let ok = r.report(&GROUPS);
    println!(
        "total {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        std::process::exit(1);
    }
}
