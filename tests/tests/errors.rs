//! Validation: exact error variants for every malformed input, nothing written on error, and
//! the empty problems (zero batch, channels or length) that are valid.
#![forbid(unsafe_code)]

use ss2d_conformance::{Problem, Spec};
use ss2d_core::{reference, BcLayout, Error, Layout, ScanPlan, ScanShape, Walk};

const SENTINEL: f32 = -777.25;

/// Runs the kernel (`selective_scan` and `ScanPlan::new` + `run`) and both references on `p`
/// with output buffers of the given lengths prefilled with a sentinel, and checks that each
/// returns `want` and leaves every output untouched.
fn expect_err(
    what: &str,
    p: &Problem,
    out_len: usize,
    state_len: Option<usize>,
    scratch_len: usize,
    want: Error,
) {
    let mut out = vec![SENTINEL; out_len];
    let mut st = state_len.map(|n| vec![SENTINEL; n]);
    let mut scratch = vec![0.0; scratch_len];
    let got = ss2d_core::selective_scan(
        &p.shape,
        &p.walk,
        &p.args(),
        &mut out,
        st.as_deref_mut(),
        &mut scratch,
    );
    assert_eq!(got, Err(want), "{what}: selective_scan");
    assert!(
        out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()),
        "{what}: out written on error"
    );
    if let Some(st) = &st {
        assert!(
            st.iter().all(|v| v.to_bits() == SENTINEL.to_bits()),
            "{what}: final_state written on error"
        );
    }
    // The plan reports validation errors at construction (the scratch one only at run).
    match ScanPlan::new(&p.shape, &p.walk, p.args(), out_len, state_len) {
        Err(e) => assert_eq!(e, want, "{what}: ScanPlan::new"),
        Ok(plan) => {
            assert!(
                matches!(want, Error::Scratch { .. }),
                "{what}: ScanPlan::new accepted, want {want:?}"
            );
            let got = plan.run(&mut out, st.as_deref_mut(), &mut scratch);
            assert_eq!(got, Err(want), "{what}: ScanPlan::run");
            assert!(out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()));
            // Work items check their scratch too.
            let mut items = plan.split(&mut out, st.as_deref_mut(), 2).expect("split");
            for item in items.items() {
                assert_eq!(item.run(&mut scratch), Err(want), "{what}: WorkItem::run");
            }
            assert!(out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()));
        }
    }
    if matches!(want, Error::Scratch { .. }) {
        return;
    }
    // The reference validates identically.
    for_reference::<f32>(what, p, out_len, state_len, want);
    for_reference::<f64>(what, p, out_len, state_len, want);
}

fn for_reference<T: reference::Real + std::fmt::Debug>(
    what: &str,
    p: &Problem,
    out_len: usize,
    state_len: Option<usize>,
    want: Error,
) {
    let s = T::of(SENTINEL);
    let mut out = vec![s; out_len];
    let mut st = state_len.map(|n| vec![s; n]);
    let got = reference::selective_scan(&p.shape, &p.walk, &p.args(), &mut out, st.as_deref_mut());
    assert_eq!(got, Err(want), "{what}: reference");
    let untouched = |v: &[T]| {
        v.iter()
            .all(|&x| x.partial_cmp(&s) == Some(std::cmp::Ordering::Equal))
    };
    assert!(untouched(&out), "{what}: reference wrote out");
    if let Some(st) = &st {
        assert!(untouched(st), "{what}: reference wrote final_state");
    }
}

/// A problem with every optional tensor and the final state, B grouped and C constant (or the
/// other way round).
fn base(b: BcLayout, c: BcLayout, layout: Layout) -> Problem {
    Spec {
        b,
        c,
        layout,
        seed: 7,
        ..Spec::full(2, 4, 5, 3)
    }
    .build()
}

fn lengths(p: &Problem) -> (usize, usize, usize) {
    (p.out_len(), p.state_len(), p.scratch_len())
}

#[test]
fn wrong_tensor_lengths() {
    for (b, c, layout) in [
        (
            BcLayout::Grouped(2),
            BcLayout::Constant,
            Layout::ChannelFirst,
        ),
        (
            BcLayout::Constant,
            BcLayout::Grouped(4),
            Layout::ChannelLast,
        ),
        (
            BcLayout::Grouped(1),
            BcLayout::Grouped(2),
            Layout::ChannelFirst,
        ),
    ] {
        let p = base(b, c, layout);
        let (ol, sl, scl) = lengths(&p);
        // Sanity: the base problem runs.
        p.run();
        type Field = fn(&mut Problem) -> &mut Vec<f32>;
        let fields: [(&str, Field); 9] = [
            ("u", |p| &mut p.u),
            ("delta", |p| &mut p.delta),
            ("A", |p| &mut p.a),
            ("B", |p| &mut p.b),
            ("C", |p| &mut p.c),
            ("D", |p| p.d_skip.as_mut().expect("D")),
            ("z", |p| p.z.as_mut().expect("z")),
            ("delta_bias", |p| p.delta_bias.as_mut().expect("bias")),
            ("initial_state", |p| {
                p.initial_state.as_mut().expect("initial state")
            }),
        ];
        for (name, field) in fields {
            let mut q = p.clone();
            let expected = field(&mut q).len();
            for actual in [expected - 1, expected + 1, 0] {
                let mut q = p.clone();
                field(&mut q).resize(actual, 0.5);
                let what = format!("{name} of {actual} ({b:?}, {c:?}, {layout:?})");
                expect_err(
                    &what,
                    &q,
                    ol,
                    Some(sl),
                    scl,
                    Error::Length {
                        tensor: name,
                        expected,
                        actual,
                    },
                );
            }
        }
        for actual in [ol - 1, ol + 1, 0] {
            expect_err(
                &format!("out of {actual}"),
                &p,
                actual,
                Some(sl),
                scl,
                Error::Length {
                    tensor: "out",
                    expected: ol,
                    actual,
                },
            );
        }
        for actual in [sl - 1, sl + 1, 0] {
            expect_err(
                &format!("final_state of {actual}"),
                &p,
                ol,
                Some(actual),
                scl,
                Error::Length {
                    tensor: "final_state",
                    expected: sl,
                    actual,
                },
            );
        }
    }
}

#[test]
fn length_errors_name_the_first_bad_tensor_in_signature_order() {
    let p = base(
        BcLayout::Grouped(2),
        BcLayout::Grouped(1),
        Layout::ChannelFirst,
    );
    let (ol, sl, scl) = lengths(&p);
    let mut q = p.clone();
    q.z.as_mut().expect("z").push(1.0);
    q.a.pop();
    expect_err(
        "A and z wrong",
        &q,
        ol,
        Some(sl),
        scl,
        Error::Length {
            tensor: "A",
            expected: 12,
            actual: 11,
        },
    );
}

#[test]
fn bad_dstate() {
    for n in [0, 257, usize::MAX] {
        let mut p = base(
            BcLayout::Grouped(2),
            BcLayout::Constant,
            Layout::ChannelFirst,
        );
        p.shape.dstate = n;
        let (ol, sl, scl) = (p.out_len(), 24, 1 << 12);
        expect_err(
            &format!("dstate {n}"),
            &p,
            ol,
            Some(sl),
            scl,
            Error::Dstate { dstate: n },
        );
    }
    // 256 is the limit and valid.
    let p = Spec::plain(1, 2, 3, 256).build();
    p.run();
}

#[test]
fn bad_groups() {
    let p0 = Spec {
        seed: 3,
        ..Spec::full(1, 6, 4, 2)
    }
    .build();
    let (ol, sl, scl) = lengths(&p0);
    let cases = [
        (
            BcLayout::Grouped(4),
            BcLayout::Grouped(1),
            Error::Groups {
                tensor: "B",
                dim: 6,
                groups: 4,
            },
        ),
        (
            BcLayout::Constant,
            BcLayout::Grouped(5),
            Error::Groups {
                tensor: "C",
                dim: 6,
                groups: 5,
            },
        ),
        (
            BcLayout::Grouped(12),
            BcLayout::Constant,
            Error::Groups {
                tensor: "B",
                dim: 6,
                groups: 12,
            },
        ),
        (
            BcLayout::Grouped(0),
            BcLayout::Grouped(1),
            Error::Zero { field: "B" },
        ),
        (
            BcLayout::Grouped(3),
            BcLayout::Grouped(0),
            Error::Zero { field: "C" },
        ),
    ];
    for (b, c, want) in cases {
        let mut p = p0.clone();
        p.shape.b = b;
        p.shape.c = c;
        expect_err(&format!("B {b:?} C {c:?}"), &p, ol, Some(sl), scl, want);
    }
    // Zero groups is an error even with no channels.
    let mut p = Spec::plain(1, 0, 4, 2).build();
    p.shape.b = BcLayout::Grouped(0);
    expect_err(
        "0 groups, dim 0",
        &p,
        0,
        None,
        1 << 10,
        Error::Zero { field: "B" },
    );
}

#[test]
fn overflowing_sizes() {
    let huge = |batch: usize, dim: usize, seqlen: usize, dstate: usize, b: BcLayout| {
        let mut p = Spec::plain(1, 1, 1, 1).build();
        p.shape = ScanShape {
            batch,
            dim,
            seqlen,
            dstate,
            b,
            c: BcLayout::Constant,
            layout: Layout::ChannelFirst,
        };
        p.walk = Walk::forward(seqlen);
        p
    };
    let cases = [
        // batch * dim * seqlen overflows usize.
        huge(4, 1, usize::MAX / 2, 1, BcLayout::Constant),
        huge(usize::MAX, usize::MAX, 0, 1, BcLayout::Constant),
        // ... fits usize but not isize.
        huge(1, 1 << 32, 1 << 31, 1, BcLayout::Constant),
        // batch * dim * dstate overflows although seqlen is 0.
        huge(1 << 31, 1 << 31, 0, 4, BcLayout::Constant),
        // The grouped B size overflows usize, or isize.
        huge(1, 1, 1 << 60, 256, BcLayout::Grouped(1)),
        huge(1, 1, 1 << 62, 2, BcLayout::Grouped(1)),
        huge(1 << 20, 1, 1 << 40, 256, BcLayout::Grouped(1)),
    ];
    for p in cases {
        let what = format!("{:?}", p.shape);
        let mut out = vec![SENTINEL; 8];
        let mut st = vec![SENTINEL; 8];
        let mut scratch = vec![0.0; 1 << 12];
        let got = ss2d_core::selective_scan(
            &p.shape,
            &p.walk,
            &p.args(),
            &mut out,
            Some(&mut st),
            &mut scratch,
        );
        assert!(
            matches!(got, Err(Error::Overflow { .. })),
            "{what}: got {got:?}"
        );
        assert!(matches!(p.shape.validate(), Err(Error::Overflow { .. })));
        assert!(out
            .iter()
            .chain(&st)
            .all(|v| v.to_bits() == SENTINEL.to_bits()));
        let mut rout = vec![0.0f64; 8];
        let got = reference::selective_scan(&p.shape, &p.walk, &p.args(), &mut rout, None);
        assert!(
            matches!(got, Err(Error::Overflow { .. })),
            "{what}: reference got {got:?}"
        );
    }
    // A walk whose length overflows.
    let p = base(
        BcLayout::Grouped(2),
        BcLayout::Constant,
        Layout::ChannelFirst,
    );
    let (ol, sl, scl) = lengths(&p);
    let mut q = p.clone();
    q.walk = Walk {
        start: 0,
        outer: (usize::MAX, 1),
        inner: (2, 1),
    };
    expect_err(
        "walk length overflow",
        &q,
        ol,
        Some(sl),
        scl,
        Error::Overflow {
            what: "walk length",
        },
    );
}

#[test]
fn scratch_too_small() {
    for (b, c) in [
        (BcLayout::Grouped(2), BcLayout::Constant),
        (BcLayout::Constant, BcLayout::Constant),
    ] {
        for dstate in [1, 3, 16, 17, 256] {
            let p = Spec {
                b,
                c,
                ..Spec::full(2, 4, 5, dstate)
            }
            .build();
            let (ol, sl, need) = lengths(&p);
            assert!(need > 0);
            for actual in [need - 1, 0] {
                expect_err(
                    &format!("scratch {actual} of {need}"),
                    &p,
                    ol,
                    Some(sl),
                    actual,
                    Error::Scratch {
                        needed: need,
                        actual,
                    },
                );
            }
        }
    }
}

#[test]
fn bad_walks() {
    let p = base(
        BcLayout::Grouped(2),
        BcLayout::Constant,
        Layout::ChannelLast,
    );
    let (ol, sl, scl) = lengths(&p);
    let l = p.shape.seqlen; // 5
    let il = l as isize;
    let walk_err = |w: Walk, e: Error| {
        let mut q = p.clone();
        q.walk = w;
        expect_err(&format!("{w:?}"), &q, ol, Some(sl), scl, e);
    };
    let walk_len = |w: Walk, actual: usize| {
        walk_err(
            w,
            Error::WalkLength {
                expected: l,
                actual,
            },
        )
    };
    walk_len(Walk::forward(l - 1), l - 1);
    walk_len(Walk::forward(l + 1), l + 1);
    walk_len(Walk::reverse(0), 0);
    walk_len(Walk::cross(2, 3, 1).expect("walk"), 6);
    walk_len(
        Walk {
            start: 0,
            outer: (0, 1),
            inner: (l, 1),
        },
        0,
    );
    let bounds = |w: Walk| walk_err(w, Error::WalkBounds { seqlen: l });
    // Starts one past the end / walks below zero / strides past the end.
    bounds(Walk {
        start: 1,
        ..Walk::forward(l)
    });
    bounds(Walk {
        start: 0,
        outer: (1, 0),
        inner: (l, -1),
    });
    bounds(Walk {
        start: l,
        ..Walk::reverse(l)
    });
    bounds(Walk {
        start: 0,
        outer: (1, 0),
        inner: (l, 2),
    });
    bounds(Walk {
        start: 0,
        outer: (l, il),
        inner: (1, 1),
    });
    bounds(Walk {
        start: usize::MAX,
        ..Walk::reverse(l)
    });
    bounds(Walk {
        start: 0,
        outer: (l, isize::MAX),
        inner: (1, 1),
    });
    bounds(Walk {
        start: l - 1,
        outer: (l, isize::MIN),
        inner: (1, 1),
    });
    // In bounds, but revisiting positions (not a permutation).
    let repeats = |w: Walk| walk_err(w, Error::WalkRepeats { seqlen: l });
    repeats(Walk {
        start: 2,
        outer: (1, 0),
        inner: (l, 0),
    });
    repeats(Walk {
        start: 0,
        outer: (l, 0),
        inner: (1, 1),
    });
    repeats(Walk {
        start: l - 1,
        outer: (1, 7),
        inner: (l, 0),
    });
}

#[test]
fn split_checks_output_lengths() {
    let p = base(
        BcLayout::Grouped(2),
        BcLayout::Constant,
        Layout::ChannelFirst,
    );
    let (ol, sl, _) = lengths(&p);
    let plan = p.plan();
    let mut out = vec![SENTINEL; ol + 1];
    let mut st = vec![SENTINEL; sl];
    let err = plan.split(&mut out, Some(&mut st), 2).err();
    assert_eq!(
        err,
        Some(Error::Length {
            tensor: "out",
            expected: ol,
            actual: ol + 1
        })
    );
    let mut out = vec![SENTINEL; ol];
    let err = plan.split(&mut out, None, 2).err();
    assert_eq!(
        err,
        Some(Error::Length {
            tensor: "final_state",
            expected: sl,
            actual: 0
        })
    );
    let err = plan.run(&mut out, None, &mut vec![0.0; plan.scratch_len()]);
    assert_eq!(
        err,
        Err(Error::Length {
            tensor: "final_state",
            expected: sl,
            actual: 0
        })
    );
    assert!(out.iter().all(|v| v.to_bits() == SENTINEL.to_bits()));
}

#[test]
fn empty_problems_are_valid() {
    for (batch, dim, seqlen) in [(0, 4, 5), (2, 0, 5), (2, 4, 0), (0, 0, 0), (1, 34, 0)] {
        for has_init in [false, true] {
            for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
                for (b, c) in [
                    (BcLayout::Grouped(2), BcLayout::Constant),
                    (BcLayout::Constant, BcLayout::Grouped(1)),
                ] {
                    let p = Spec {
                        b,
                        c,
                        layout,
                        has_init,
                        ..Spec::full(batch, dim, seqlen, 3)
                    }
                    .build();
                    let what = format!("{:?} init {has_init}", p.shape);
                    let (ol, sl, scl) = lengths(&p);
                    assert_eq!(ol, 0, "{what}");
                    let want_state = p.initial_state.clone().unwrap_or(vec![0.0; sl]);
                    let mut out: Vec<f32> = Vec::new();
                    let mut st = vec![SENTINEL; sl];
                    let mut scratch = vec![f32::NAN; scl];
                    ss2d_core::selective_scan(
                        &p.shape,
                        &p.walk,
                        &p.args(),
                        &mut out,
                        Some(&mut st),
                        &mut scratch,
                    )
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(st, want_state, "{what}: final state");
                    // Without a final state.
                    ss2d_core::selective_scan(
                        &p.shape,
                        &p.walk,
                        &p.args(),
                        &mut out,
                        None,
                        &mut scratch,
                    )
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                    // Work items.
                    let mut st = vec![SENTINEL; sl];
                    let plan = ScanPlan::new(&p.shape, &p.walk, p.args(), 0, Some(sl))
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    let mut items = plan.split(&mut out, Some(&mut st), 3).expect("split");
                    assert_eq!(items.count(), 3.clamp(1, plan.units().max(1)), "{what}");
                    for item in items.items() {
                        item.run(&mut scratch).expect("run");
                    }
                    assert_eq!(st, want_state, "{what}: final state (work items)");
                    // The reference agrees.
                    let mut rst = vec![-1.0f64; sl];
                    reference::selective_scan(
                        &p.shape,
                        &p.walk,
                        &p.args(),
                        &mut Vec::<f64>::new(),
                        Some(&mut rst),
                    )
                    .expect("reference");
                    let want64: Vec<f64> = want_state.iter().map(|&v| v as f64).collect();
                    assert_eq!(rst, want64, "{what}: reference final state");
                }
            }
        }
    }
    // Wrong lengths are still errors on an empty problem.
    let mut p = Spec::full(2, 4, 0, 3).build();
    p.u.push(1.0);
    expect_err(
        "u of 1, seqlen 0",
        &p,
        0,
        Some(24),
        1 << 12,
        Error::Length {
            tensor: "u",
            expected: 0,
            actual: 1,
        },
    );
}
