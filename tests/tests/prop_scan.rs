//! Property tests: random valid problems (every option, both layouts, forward / reverse / 2D
//! walks, values in the model's domains) against the f64 reference, and the determinism
//! contract: split-and-resume, work-item splits, scratch and output prefill.
#![forbid(unsafe_code)]

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use ss2d_conformance::{
    check_bitwise, check_close, concat_axis, divisors, seq_axis, Problem, Spec, WalkKind,
};
use ss2d_core::{BcLayout, Layout, ScanPlan};

/// Kernel vs f64 reference: `max|err| <= REL * max|ref| + ABS`.
const REL: f64 = 1e-5;
const ABS: f64 = 1e-8;

/// Lengths around the chunk (64) and lane boundaries, mixed into the uniform draws.
const EDGE_LENGTHS: [usize; 14] = [1, 2, 3, 7, 63, 64, 65, 127, 128, 129, 191, 257, 299, 300];

fn bc_layout(dim: usize) -> impl Strategy<Value = BcLayout> {
    prop_oneof![
        1 => Just(BcLayout::Constant),
        3 => select(divisors(dim)).prop_map(BcLayout::Grouped),
    ]
}

fn walk_and_len() -> impl Strategy<Value = (WalkKind, usize)> {
    let len = prop_oneof![3 => 1..=300usize, 1 => select(EDGE_LENGTHS.to_vec())];
    prop_oneof![
        2 => len.clone().prop_map(|l| (WalkKind::Forward, l)),
        2 => len.prop_map(|l| (WalkKind::Reverse, l)),
        3 => (1..=17usize, 1..=17usize, 0..4usize)
            .prop_map(|(h, w, k)| (WalkKind::Cross { h, w, k }, h * w)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let dims = (1..=40usize).prop_flat_map(|d| (Just(d), bc_layout(d), bc_layout(d)));
    (
        dims,
        walk_and_len(),
        (1..=2usize, 1..=20usize, any::<bool>(), any::<u64>()),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (dim, b, c),
                (walk, seqlen),
                (batch, dstate, cl, seed),
                (has_d, has_z, has_bias, softplus, has_init, want_final),
            )| Spec {
                batch,
                dim,
                seqlen,
                dstate,
                b,
                c,
                layout: if cl {
                    Layout::ChannelLast
                } else {
                    Layout::ChannelFirst
                },
                walk,
                has_d,
                has_z,
                has_bias,
                softplus,
                has_init,
                want_final,
                seed,
            },
        )
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // Failures are reported with the minimal Spec; no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    })
}

fn fail(m: String) -> TestCaseError {
    TestCaseError::fail(m)
}

#[test]
fn kernel_matches_f64_reference() {
    // (worst out ratio, its spec, worst final-state ratio); the runner takes an `Fn`.
    let worst = std::cell::RefCell::new((0.0f64, None::<Spec>, 0.0f64));
    let result = runner(64).run(&spec(), |s| {
        let p = s.build();
        let (out, st) = p.run();
        let (rout, rst) = p.reference::<f64>();
        let r = check_close("out", &out, &rout, REL, ABS).map_err(fail)?;
        let mut w = worst.borrow_mut();
        if r > w.0 {
            w.0 = r;
            w.1 = Some(s);
        }
        if let (Some(st), Some(rst)) = (st, rst) {
            let r = check_close("final_state", &st, &rst, REL, ABS).map_err(fail)?;
            w.2 = w.2.max(r);
        }
        Ok(())
    });
    let (w, ws, wst) = worst.into_inner();
    println!(
        "kernel vs f64 reference: worst err/max|ref| out {w:.3e}, final state {wst:.3e} \
         (worst case {ws:?})"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Scanning the first `l1` steps (returning the state) and then the rest from that state gives
/// bitwise the one-pass result. The pieces are laid out in walk order and scanned forward, so
/// this also checks that a walk over the data equals a forward scan of the data permuted into
/// walk order.
#[test]
fn split_and_resume_is_bitwise() {
    let strat = (spec(), any::<prop::sample::Index>());
    let result = runner(48).run(&strat, |(mut s, cut)| {
        s.want_final = true;
        let p = s.build();
        let l = p.shape.seqlen;
        let l1 = cut.index(l + 1);
        let order: Vec<usize> = p.walk.iter().collect();
        let (out, st) = p.run();
        let st = st.expect("final state");

        // Whole sequence permuted into walk order, walked forward.
        let w = p.steps(0, l, p.initial_state.clone());
        let (wout, wst) = w.run();
        check_bitwise("walk order vs walk", &p.unpermute_out(&wout, &order), &out).map_err(fail)?;
        check_bitwise("walk order final state", &wst.expect("state"), &st).map_err(fail)?;

        // Split at l1 and resume.
        let first = p.steps(0, l1, p.initial_state.clone());
        let (out1, st1) = first.run();
        let second = p.steps(l1, l, st1);
        let (out2, st2) = second.run();
        let (outer, inner) = seq_axis(&p.shape);
        let joined = concat_axis(&out1, &out2, outer, inner);
        check_bitwise(
            &format!("split at {l1} of {l}: out"),
            &p.unpermute_out(&joined, &order),
            &out,
        )
        .map_err(fail)?;
        check_bitwise(
            &format!("split at {l1} of {l}: final state"),
            &st2.expect("state"),
            &st,
        )
        .map_err(fail)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The output's address does not change the values: the same problem written at every float
/// offset of a cache line (the kernel shortens a channel-first run's first chunk so that the
/// later chunks' blocks start on the output's lines) gives the bits of a plain run, and the
/// floats around the output stay untouched.
#[test]
fn output_alignment_is_bitwise() {
    let result = runner(24).run(&spec(), |s| {
        let p = s.build();
        let (want, want_st) = p.run();
        let n = p.out_len();
        let mut scratch = vec![0.0; p.scratch_len()];
        for off in 0..16 {
            let mut buf = vec![f32::NAN; off + n + 16];
            let mut st = p.want_final.then(|| vec![0.0; p.state_len()]);
            p.run_into(&mut buf[off..off + n], st.as_deref_mut(), &mut scratch)
                .map_err(|e| fail(format!("offset {off}: {e}")))?;
            check_bitwise(
                &format!("output at offset {off}"),
                &buf[off..off + n],
                &want,
            )
            .map_err(fail)?;
            if let (Some(st), Some(want_st)) = (&st, &want_st) {
                check_bitwise(&format!("final state, output at offset {off}"), st, want_st)
                    .map_err(fail)?;
            }
            let mut outside = buf[..off].iter().chain(&buf[off + n..]);
            if let Some(x) = outside.find(|x| !x.is_nan()) {
                return Err(fail(format!(
                    "offset {off}: {x} written outside the output"
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn run_split(
    plan: &ScanPlan<'_>,
    p: &Problem,
    count: usize,
    threaded: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>), String> {
    let mut out = vec![f32::NAN; p.out_len()];
    let mut st = p.want_final.then(|| vec![f32::NAN; p.state_len()]);
    let need = plan.scratch_len();
    {
        let mut items = plan
            .split(&mut out, st.as_deref_mut(), count)
            .map_err(|e| format!("split({count}): {e}"))?;
        let expect = count.clamp(1, plan.units().max(1));
        if items.count() != expect {
            return Err(format!(
                "split({count}) gave {} items, expected {expect}",
                items.count()
            ));
        }
        let list: Vec<_> = items.items().collect();
        if list.len() != expect {
            return Err(format!("split({count}) yielded {} items", list.len()));
        }
        if threaded {
            // Every item on its own thread, in reverse order of creation.
            let errs: Vec<String> = std::thread::scope(|sc| {
                let handles: Vec<_> = list
                    .into_iter()
                    .rev()
                    .map(|item| {
                        sc.spawn(move || {
                            let mut scratch = vec![f32::NAN; need];
                            item.run(&mut scratch)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().expect("no panic").err())
                    .map(|e| e.to_string())
                    .collect()
            });
            if let Some(e) = errs.first() {
                return Err(e.clone());
            }
        } else {
            let mut scratch = vec![0.0; need];
            for item in list {
                item.run(&mut scratch).map_err(|e| e.to_string())?;
            }
        }
        // A second pass over the same WorkItems yields nothing.
        if items.items().next().is_some() {
            return Err("items() yielded an item twice".into());
        }
    }
    Ok((out, st))
}

#[test]
fn work_item_splits_are_bitwise() {
    let result = runner(48).run(&spec(), |s| {
        let p = s.build();
        let plan = p.plan();
        let mut out = vec![0.0; p.out_len()];
        let mut st = p.want_final.then(|| vec![0.0; p.state_len()]);
        let mut scratch = vec![0.0; plan.scratch_len()];
        plan.run(&mut out, st.as_deref_mut(), &mut scratch)
            .map_err(|e| fail(e.to_string()))?;
        let (kout, kst) = p.run();
        check_bitwise("ScanPlan::run vs selective_scan", &out, &kout).map_err(fail)?;
        if let (Some(a), Some(b)) = (&st, &kst) {
            check_bitwise("ScanPlan::run vs selective_scan state", a, b).map_err(fail)?;
        }
        for (count, threaded) in [
            (1, false),
            (2, false),
            (3, false),
            (7, false),
            (3, true),
            (7, true),
            (1000, false),
        ] {
            let (o, so) = run_split(&plan, &p, count, threaded).map_err(fail)?;
            check_bitwise(
                &format!("split {count} (threads {threaded}): out"),
                &o,
                &out,
            )
            .map_err(fail)?;
            if let (Some(a), Some(b)) = (&so, &st) {
                check_bitwise(&format!("split {count}: final state"), a, b).map_err(fail)?;
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn scratch_and_output_prefill_do_not_matter() {
    let result = runner(48).run(&spec(), |s| {
        let p = s.build();
        let need = p.scratch_len();
        let (base_out, base_st) = p.run();
        let fills = [f32::NAN, f32::INFINITY, -1e30, 12345.0];
        for (i, &fill) in fills.iter().enumerate() {
            // Exactly `need` elements at every misalignment within one vector.
            let off = i * 5 % 16;
            let mut buf = vec![fill; need + 16];
            let scratch = &mut buf[off..off + need];
            let mut out = vec![fills[(i + 1) % fills.len()]; p.out_len()];
            let mut st = p.want_final.then(|| vec![fill; p.state_len()]);
            p.run_into(&mut out, st.as_deref_mut(), scratch)
                .map_err(|e| fail(format!("scratch offset {off}: {e}")))?;
            check_bitwise(
                &format!("prefill {fill}, scratch offset {off}: out"),
                &out,
                &base_out,
            )
            .map_err(fail)?;
            if let (Some(a), Some(b)) = (&st, &base_st) {
                check_bitwise(&format!("prefill {fill}: final state"), a, b).map_err(fail)?;
            }
        }
        // Reusing one scratch buffer for a different problem afterwards is fine too.
        let mut scratch = vec![f32::NAN; need * 2];
        let mut out = vec![f32::NAN; p.out_len()];
        let mut st = p.want_final.then(|| vec![f32::NAN; p.state_len()]);
        p.run_into(&mut out, st.as_deref_mut(), &mut scratch)
            .map_err(|e| fail(e.to_string()))?;
        p.run_into(&mut out, st.as_deref_mut(), &mut scratch)
            .map_err(|e| fail(e.to_string()))?;
        check_bitwise("second run, oversized scratch: out", &out, &base_out).map_err(fail)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// States beyond one register block (the kernel keeps at most 16 states in registers and runs
/// blocks of 16, 8, 4 or the rest below 4 in order): N = 17, 31, 32, 33, 64, 100, 256 against
/// the f64 reference.
#[test]
fn large_dstate_matches_f64_reference() {
    let mut worst = 0.0f64;
    for (i, dstate) in [17usize, 31, 32, 33, 64, 100, 256].into_iter().enumerate() {
        for (b, c, layout) in [
            (
                BcLayout::Grouped(2),
                BcLayout::Constant,
                Layout::ChannelFirst,
            ),
            (
                BcLayout::Constant,
                BcLayout::Grouped(1),
                Layout::ChannelLast,
            ),
        ] {
            let s = Spec {
                b,
                c,
                layout,
                walk: WalkKind::Cross {
                    h: 7,
                    w: 11,
                    k: i % 4,
                },
                seed: 100 + i as u64,
                ..Spec::full(2, 2 * ss2d_core::MAX_LANES + 2, 77, dstate)
            };
            let p = s.build();
            let (out, st) = p.run();
            let (rout, rst) = p.reference::<f64>();
            let r = check_close(&format!("{s:?} out"), &out, &rout, REL, ABS)
                .unwrap_or_else(|m| panic!("{m}"));
            let rs = check_close(
                &format!("{s:?} final state"),
                &st.expect("state"),
                &rst.expect("state"),
                REL,
                ABS,
            )
            .unwrap_or_else(|m| panic!("{m}"));
            worst = worst.max(r).max(rs);
        }
    }
    println!("large dstate: worst err/max|ref| {worst:.3e}");
}
