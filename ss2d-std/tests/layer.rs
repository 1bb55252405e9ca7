//! The SS2D layer against VMamba's own SS2D forward (`testdata/golden/ss2d`): `output` and the
//! `debug.*` intermediates, every backend; bitwise determinism across thread counts; the
//! configuration, weight and buffer errors.

use std::collections::HashMap;
use std::path::PathBuf;

use ss2d_std::layer::{
    init, Backend, CoreType, DtRank, ForwardOptions, ForwardType, Grid, Intermediates, LayerError,
    OutNorm, Ss2d, Ss2dConfig, StageTimes, ZBranch,
};
use ss2d_std::{Parallelism, ScopedThreads};
use ss2d_testsupport::{bits, golden_cases, golden_dir, rel_err, Golden};

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The layer configuration and weights of a golden SS2D file.
trait GoldenLayer {
    fn config(&self) -> Ss2dConfig;
    fn layer(&self) -> Ss2d;
}

impl GoldenLayer for Golden {
    fn config(&self) -> Ss2dConfig {
        Ss2dConfig {
            d_model: self.meta_usize("d_model"),
            d_state: self.meta_usize("d_state"),
            ssm_ratio: self.meta("ssm_ratio").parse().unwrap(),
            dt_rank: self.meta("dt_rank").parse().unwrap(),
            d_conv: self.meta_usize("d_conv"),
            conv_bias: self.meta_bool("conv_bias"),
            forward_type: self.meta("forward_type").to_string(),
            channel_first: self.meta_bool("channel_first"),
        }
    }

    fn layer(&self) -> Ss2d {
        Ss2d::from_map(&self.config(), "", &self.tensors)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
}

fn golden_files() -> Vec<PathBuf> {
    let v = golden_cases("ss2d");
    assert_eq!(v.len(), 15, "golden ss2d cases");
    v
}

struct Run {
    output: Vec<f32>,
    debug: Intermediates,
    times: StageTimes,
}

fn run(layer: &Ss2d, g: &Golden, backend: Backend, par: Parallelism<'_>) -> Run {
    let (shape, input) = &g.tensors["input"];
    let grid = layer.dims().grid_of(shape).unwrap();
    let mut output = vec![f32::NAN; input.len()];
    let mut debug = Intermediates::default();
    let mut times = StageTimes::default();
    layer
        .forward_with(
            input,
            grid,
            &mut output,
            ForwardOptions {
                backend,
                par,
                times: Some(&mut times),
                debug: Some(&mut debug),
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", g.name));
    Run {
        output,
        debug,
        times,
    }
}

const TOL: f64 = 1e-5;

#[test]
fn golden_output_and_intermediates_every_backend() {
    for path in golden_files() {
        let g = Golden::load(&path);
        let layer = g.layer();
        let big = g.meta("L").parse::<usize>().unwrap() > 1000;
        let mut backends = vec![Backend::Fast, Backend::Unfused, Backend::Reference];
        if big && g.meta("forward_type") == "v0" {
            // The scalar reference at N = 16 over 56x56 takes seconds; the bench covers it.
            backends.pop();
        }
        for backend in backends {
            let r = run(&layer, &g, backend, Parallelism::Sequential);
            let want = g.tensor("output");
            let e = rel_err(&r.output, want);
            println!("{} {backend:?}: output rel err {e:.2e}", g.name);
            assert!(e <= TOL, "{} {backend:?}: output rel err {e:e}", g.name);
            assert!(r.times.total() > std::time::Duration::ZERO);
            for (name, got) in [
                ("debug.in_proj_out", &r.debug.in_proj_out),
                ("debug.conv2d_out", &r.debug.conv2d_out),
                ("debug.out_norm_in", &r.debug.out_norm_in),
                ("debug.out_norm_out", &r.debug.out_norm_out),
            ] {
                if let Some((_, want)) = g.tensors.get(name) {
                    let e = rel_err(got, want);
                    assert!(e <= TOL, "{} {backend:?}: {name} rel err {e:e}", g.name);
                }
            }
        }
    }
}

#[test]
fn bitwise_identical_for_any_thread_count() {
    let pools: Vec<rayon::ThreadPool> = [2, 3]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    for path in golden_files() {
        let g = Golden::load(&path);
        let layer = g.layer();
        let one = run(&layer, &g, Backend::Fast, Parallelism::Sequential);
        for (i, pool) in pools.iter().enumerate() {
            let host = ScopedThreads {
                threads: i + 2,
                items: 3 * i,
            };
            for par in [
                Parallelism::Pool(pool),
                Parallelism::Threads(i + 2),
                Parallelism::Host(&host),
            ] {
                let r = run(&layer, &g, Backend::Fast, par);
                assert!(
                    bits(&r.output) == bits(&one.output),
                    "{}: output differs with {par:?}",
                    g.name
                );
                assert!(bits(&r.debug.out_norm_in) == bits(&one.debug.out_norm_in));
                assert!(bits(&r.debug.out_norm_out) == bits(&one.debug.out_norm_out));
            }
        }
    }
}

/// Sizes that do not fill whole blocks or whole vectors: position counts just below, at and
/// above the product block, odd channel counts, batch 3, both layouts.
#[test]
fn bitwise_identical_across_threads_on_ragged_shapes() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for (cfg, grid) in [
        (
            Ss2dConfig::s1l8(24),
            Grid {
                batch: 3,
                h: 16,
                w: 17,
            },
        ),
        // One image over several threads: in_proj and the conv run in several bands of rows,
        // with the rows at the band edges convolved after the pass.
        (
            Ss2dConfig::s1l8(24),
            Grid {
                batch: 1,
                h: 13,
                w: 9,
            },
        ),
        (
            Ss2dConfig::s2l5(20),
            Grid {
                batch: 1,
                h: 1,
                w: 255,
            },
        ),
        // One channel-first image of more positions than one out_proj block (4096 at 24
        // channels): blocks transposed into place (one thread) against the whole-size
        // intermediate (several threads).
        (
            Ss2dConfig::s1l8(24),
            Grid {
                batch: 1,
                h: 65,
                w: 65,
            },
        ),
        (
            Ss2dConfig::vanilla(12),
            Grid {
                batch: 2,
                h: 9,
                w: 57,
            },
        ),
        (
            Ss2dConfig::new(10, "v05_nozact_oact", true),
            Grid {
                batch: 2,
                h: 5,
                w: 53,
            },
        ),
        (
            Ss2dConfig::new(10, "v05_onsoftmax", false),
            Grid {
                batch: 2,
                h: 7,
                w: 3,
            },
        ),
        // The fused product + conv pass (`ops::linear_conv_cl`) under a 5 x 5 kernel: rows
        // wider than a product block, in bands (two rows at each band edge left for after
        // the pass); channel-first images of few rows; a grid of fewer rows than the kernel
        // reaches.
        (
            Ss2dConfig {
                d_conv: 5,
                ..Ss2dConfig::new(10, "v05_noz", false)
            },
            Grid {
                batch: 1,
                h: 13,
                w: 300,
            },
        ),
        (
            Ss2dConfig {
                d_conv: 5,
                ..Ss2dConfig::s1l8(16)
            },
            Grid {
                batch: 2,
                h: 9,
                w: 7,
            },
        ),
        (
            Ss2dConfig {
                d_conv: 5,
                ..Ss2dConfig::new(12, "v05_noz", false)
            },
            Grid {
                batch: 1,
                h: 3,
                w: 70,
            },
        ),
    ] {
        let layer = init::vmamba_like(&cfg, 7).unwrap();
        let n: usize = layer.dims().io_shape(grid).iter().product();
        let x = init::input(n, 3);
        let mut a = vec![0.0; n];
        let mut b = vec![0.0; n];
        let mut c = vec![0.0; n];
        layer
            .forward(&x, grid, &mut a, Parallelism::Sequential)
            .unwrap();
        layer
            .forward(&x, grid, &mut b, Parallelism::Pool(&pool))
            .unwrap();
        layer
            .forward(&x, grid, &mut c, Parallelism::Threads(2))
            .unwrap();
        assert!(bits(&a) == bits(&b) && bits(&a) == bits(&c), "{cfg:?}");
        assert!(a.iter().all(|v| v.is_finite()));
        // And the scalar reference agrees.
        let mut r = vec![0.0; n];
        layer
            .forward_with(
                &x,
                grid,
                &mut r,
                ForwardOptions {
                    backend: Backend::Reference,
                    ..Default::default()
                },
            )
            .unwrap();
        let e = rel_err(&a, &r);
        assert!(e <= TOL, "{cfg:?}: fast vs reference {e:e}");
    }
}

/// Where the output sits in memory does not change the bits: the channel-first `out_proj`
/// shortens its first block of positions so that the later ones start on a cache line of the
/// output, so the blocks differ with the output's offset in a line. Every offset gives the
/// plain run's bits and leaves the floats around the output untouched.
#[test]
fn output_offset_does_not_change_the_bits() {
    for grid in [
        // More positions than one out_proj block (4096 at 24 channels).
        Grid {
            batch: 1,
            h: 65,
            w: 65,
        },
        Grid {
            batch: 2,
            h: 5,
            w: 7,
        },
        // Fewer positions than a line holds.
        Grid {
            batch: 1,
            h: 3,
            w: 3,
        },
    ] {
        let layer = init::vmamba_like(&Ss2dConfig::s1l8(24), 7).unwrap();
        let n: usize = layer.dims().io_shape(grid).iter().product();
        let x = init::input(n, 3);
        let mut want = vec![0.0; n];
        layer
            .forward(&x, grid, &mut want, Parallelism::Sequential)
            .unwrap();
        assert!(want.iter().all(|v| v.is_finite()));
        for off in 0..16 {
            let mut buf = vec![f32::NAN; off + n + 16];
            layer
                .forward(&x, grid, &mut buf[off..off + n], Parallelism::Sequential)
                .unwrap();
            assert!(
                bits(&buf[off..off + n]) == bits(&want),
                "{grid:?} offset {off}"
            );
            let mut outside = buf[..off].iter().chain(&buf[off + n..]);
            assert!(
                outside.all(|v| v.is_nan()),
                "{grid:?} offset {off}: written outside"
            );
        }
    }
}

#[test]
fn empty_grids_are_valid() {
    let layer = init::vmamba_like(&Ss2dConfig::s1l8(8), 1).unwrap();
    for grid in [
        Grid {
            batch: 0,
            h: 4,
            w: 4,
        },
        Grid {
            batch: 1,
            h: 0,
            w: 4,
        },
        Grid {
            batch: 2,
            h: 3,
            w: 0,
        },
    ] {
        layer
            .forward(&[], grid, &mut [], Parallelism::Threads(2))
            .unwrap();
    }
}

// ------------------------------------------------------------------------------------------
// Forward types

#[test]
fn forward_type_suffixes_follow_upstream() {
    let p = |s: &str| ForwardType::parse(s);
    let f = p("v05_noz").unwrap();
    assert_eq!(
        (f.core, f.z, f.out_norm, f.out_gelu),
        (CoreType::V05, ZBranch::None, OutNorm::LayerNorm, false)
    );
    let f = p("v3").unwrap();
    assert_eq!((f.core, f.z), (CoreType::V3, ZBranch::Silu));
    assert_eq!(p("v05_nozact").unwrap().z, ZBranch::Identity);
    let f = p("v052dc_noz").unwrap();
    assert_eq!(f.core, CoreType::V052dc);
    assert!(p("v05_noz_oact").unwrap().out_gelu);
    assert!(p("v05_oact_no32").unwrap().out_gelu);
    assert_eq!(p("v04_onsigmoid").unwrap().out_norm, OutNorm::Sigmoid);
    // `_onnone` is stripped first and wins.
    assert_eq!(
        p("v01_onsoftmax_onnone").unwrap().out_norm,
        OutNorm::Identity
    );
    // `_noz` is stripped before `_oact`: this order leaves `v05_oact`, which is unknown.
    assert!(matches!(
        p("v05_oact_noz"),
        Err(LayerError::UnknownForwardType { .. })
    ));
    // v0 is matched whole.
    assert_eq!(p("v0").unwrap().core, CoreType::V0);
    assert_eq!(p("v0seq").unwrap().core, CoreType::V0Seq);
    assert!(matches!(
        p("v0_noz"),
        Err(LayerError::UnknownForwardType { .. })
    ));
    for bad in [
        "v2",
        "v2_noz",
        "v052d3",
        "xv1a",
        "m0_noz",
        "v05_ondwconv3",
        "v05_oncnorm",
    ] {
        assert!(
            matches!(p(bad), Err(LayerError::UnsupportedForwardType { .. })),
            "{bad}"
        );
    }
    for bad in ["", "v06", "V05", "v05_nox", "v31d"] {
        let e = p(bad).unwrap_err();
        assert!(matches!(e, LayerError::UnknownForwardType { .. }), "{bad}");
        assert!(!e.to_string().contains('\n'));
    }
}

// ------------------------------------------------------------------------------------------
// Configuration errors

#[test]
fn config_errors_name_the_field() {
    let base = Ss2dConfig::s1l8(96);
    let d = base.resolve().unwrap();
    assert_eq!((d.d_inner, d.dt_rank, d.d_proj()), (96, 6, 96));
    let with = |f: &dyn Fn(&mut Ss2dConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c.resolve()
    };
    assert!(matches!(
        with(&|c| c.forward_type = "v9".into()),
        Err(LayerError::UnknownForwardType { .. })
    ));
    assert_eq!(with(&|c| c.d_model = 0), Err(LayerError::ZeroDModel));
    for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(with(&|c| c.ssm_ratio = r), Err(LayerError::SsmRatio { .. })),
            "{r}"
        );
    }
    assert!(matches!(
        with(&|c| c.ssm_ratio = 0.001),
        Err(LayerError::DInner { .. })
    ));
    assert_eq!(
        with(&|c| c.d_state = 0),
        Err(LayerError::DState { d_state: 0 })
    );
    assert_eq!(
        with(&|c| c.d_state = 257),
        Err(LayerError::DState { d_state: 257 })
    );
    assert_eq!(
        with(&|c| c.dt_rank = DtRank::Fixed(0)),
        Err(LayerError::ZeroDtRank)
    );
    assert_eq!(
        with(&|c| c.d_conv = 4),
        Err(LayerError::EvenDConv { d_conv: 4 })
    );
    assert_eq!(
        with(&|c| c.d_conv = 2),
        Err(LayerError::EvenDConv { d_conv: 2 })
    );
    assert!(with(&|c| c.d_conv = 1).is_ok());
    assert!(with(&|c| c.d_conv = 0).is_ok());
    assert!(with(&|c| c.d_conv = 5).is_ok());
    assert!(matches!(
        with(&|c| c.forward_type = "v0".into()),
        Err(LayerError::Layout {
            channel_first: true,
            ..
        })
    ));
    assert!(matches!(
        with(&|c| {
            c.forward_type = "v052dc_noz".into();
            c.channel_first = false;
        }),
        Err(LayerError::Layout {
            channel_first: false,
            ..
        })
    ));
    // v0 ignores d_conv / conv_bias (always 3 and true), as SS2Dv0 does.
    let v0 = with(&|c| {
        c.forward_type = "v0".into();
        c.channel_first = false;
        c.d_conv = 4;
        c.conv_bias = false;
    })
    .unwrap();
    assert_eq!((v0.d_conv, v0.conv_bias), (3, true));
    // dt_rank auto is ceil(d_model / 16), from d_model.
    let c = Ss2dConfig {
        dt_rank: DtRank::Auto,
        ..Ss2dConfig::s2l5(100)
    };
    let d = c.resolve().unwrap();
    assert_eq!((d.d_inner, d.dt_rank), (200, 7));
    assert_eq!("auto".parse::<DtRank>().unwrap(), DtRank::Auto);
    assert_eq!("12".parse::<DtRank>().unwrap(), DtRank::Fixed(12));
    assert!("0".parse::<DtRank>().is_err() && "x".parse::<DtRank>().is_err());
    // Truncation as Python's int(): 1.5 * 7 = 10.5 -> 10.
    let d = Ss2dConfig {
        ssm_ratio: 1.5,
        ..Ss2dConfig::s1l8(7)
    }
    .resolve()
    .unwrap();
    assert_eq!(d.d_inner, 10);
    for e in [
        with(&|c| c.d_model = 0).unwrap_err(),
        with(&|c| c.d_conv = 4).unwrap_err(),
        with(&|c| c.ssm_ratio = f64::NAN).unwrap_err(),
    ] {
        assert!(!e.to_string().contains('\n'));
    }
}

// ------------------------------------------------------------------------------------------
// Weight loading

fn small() -> Golden {
    Golden::load(&golden_dir().join("ss2d/ss2d_v05_ds16_r2_cf_d16_b1_7x5.safetensors"))
}

#[test]
fn loads_under_a_prefix_and_accepts_conv_shaped_linears() {
    let g = small();
    let want = g.layer();
    let prefix = "layers.0.blocks.1.op.";
    let mut t: Tensors = HashMap::new();
    for (k, (s, d)) in &g.tensors {
        let mut s = s.clone();
        if k.ends_with("proj.weight") {
            s.extend([1, 1]);
        }
        t.insert(format!("{prefix}{k}"), (s, d.clone()));
    }
    // Other tensors of a VSSM checkpoint are ignored.
    t.insert(
        "layers.0.blocks.1.norm.weight".into(),
        (vec![16], vec![1.0; 16]),
    );
    let got = Ss2d::from_map(&g.config(), prefix, &t).unwrap();
    assert_eq!(got, want);
    // Without the prefix nothing is found.
    assert_eq!(
        Ss2d::from_map(&g.config(), "", &t).unwrap_err(),
        LayerError::MissingTensor {
            name: "A_logs".into()
        }
    );
    assert!(got.param_count() > 0);
}

#[test]
fn weight_errors_name_the_tensor() {
    let g = small();
    let cfg = g.config();
    let load = |f: &dyn Fn(&mut Tensors)| {
        let mut t = g.tensors.clone();
        f(&mut t);
        Ss2d::from_map(&cfg, "", &t)
    };
    assert_eq!(
        load(&|t| {
            t.remove("out_proj.weight");
        }),
        Err(LayerError::MissingTensor {
            name: "out_proj.weight".into()
        })
    );
    let e = load(&|t| {
        t.get_mut("in_proj.weight").unwrap().0 = vec![32, 32];
    })
    .unwrap_err();
    assert!(
        matches!(&e, LayerError::TensorShape { name, expected, .. } if name == "in_proj.weight" && expected == &vec![64, 16]),
        "{e}"
    );
    assert!(e.to_string().contains("(64, 16, 1, 1)"), "{e}");
    assert!(matches!(
        load(&|t| {
            t.get_mut("Ds").unwrap().1.pop();
        }),
        Err(LayerError::TensorLength { .. })
    ));
    assert!(matches!(
        load(&|t| {
            t.get_mut("conv2d.weight").unwrap().0 = vec![32, 9, 1, 1];
        }),
        Err(LayerError::TensorShape { .. })
    ));
    // d_state / dt_rank disagreeing with the tensors.
    let mut c = cfg.clone();
    c.d_state = 4;
    assert_eq!(
        Ss2d::from_map(&c, "", &g.tensors).unwrap_err(),
        LayerError::DStateMismatch {
            config: 4,
            a_logs: 16
        }
    );
    let mut c = cfg.clone();
    c.dt_rank = DtRank::Fixed(3);
    assert_eq!(
        Ss2d::from_map(&c, "", &g.tensors).unwrap_err(),
        LayerError::DtRankMismatch {
            config: 3,
            dt_projs_weight: 1
        }
    );
    // conv_bias false while the checkpoint has a conv bias; d_conv 1 with a conv weight.
    let mut c = cfg.clone();
    c.conv_bias = false;
    assert!(matches!(
        Ss2d::from_map(&c, "", &g.tensors),
        Err(LayerError::UnexpectedTensor { .. })
    ));
    let mut c = cfg.clone();
    c.d_conv = 1;
    assert!(matches!(
        Ss2d::from_map(&c, "", &g.tensors),
        Err(LayerError::UnexpectedTensor { .. })
    ));
    // `_noz` on a checkpoint with a z branch: in_proj has twice the rows.
    let mut c = cfg.clone();
    c.forward_type = "v05_noz".into();
    assert!(matches!(
        Ss2d::from_map(&c, "", &g.tensors),
        Err(LayerError::TensorShape { .. })
    ));
}

#[test]
fn buffer_errors_write_nothing() {
    let g = small();
    let layer = g.layer();
    let (shape, input) = &g.tensors["input"];
    let grid = layer.dims().grid_of(shape).unwrap();
    let mut out = vec![7.0f32; input.len()];
    let e = layer
        .forward(&input[1..], grid, &mut out, Parallelism::Sequential)
        .unwrap_err();
    assert!(matches!(e, LayerError::Buffer { which: "input", .. }));
    assert!(out.iter().all(|&v| v == 7.0));
    let mut short = vec![7.0f32; input.len() - 1];
    assert!(matches!(
        layer.forward(input, grid, &mut short, Parallelism::Sequential),
        Err(LayerError::Buffer {
            which: "output",
            ..
        })
    ));
    assert!(matches!(
        layer.dims().grid_of(&[1, 7, 5, 16]),
        Err(LayerError::InputShape { .. })
    ));
    let huge = Grid {
        batch: usize::MAX,
        h: 2,
        w: 2,
    };
    assert!(matches!(
        layer.forward(input, huge, &mut out, Parallelism::Sequential),
        Err(LayerError::Overflow { .. })
    ));
}

#[test]
fn init_is_deterministic_and_vmamba_like() {
    let cfg = Ss2dConfig::s1l8(96);
    let a = init::vmamba_like(&cfg, 42).unwrap();
    let b = init::vmamba_like(&cfg, 42).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, init::vmamba_like(&cfg, 43).unwrap());
    let w = a.weights();
    assert!(w.in_proj_weight.iter().all(|v| v.abs() <= 0.04));
    assert!(w.ds.iter().all(|&v| v == 1.0));
    assert!(w.a_logs.iter().all(|&v| v == 0.0)); // ln(1), N = 1
    for &bias in &w.dt_projs_bias {
        let dt = (bias as f64).exp().ln_1p();
        assert!((0.99e-3..=0.101).contains(&dt), "{dt}");
    }
    assert_eq!(
        a.param_count(),
        96 * 96 * 2 + 96 * 9 + 4 * 8 * 96 + 4 * 96 * 6 + 4 * 96 * 3 + 2 * 96
    );
}

/// Buffers reused from earlier forwards (other shapes, other layouts) hold stale values; the
/// result must not depend on them.
#[test]
fn stale_buffers_do_not_change_the_result() {
    let target = Ss2dConfig::s2l5(16);
    let grid = Grid {
        batch: 2,
        h: 9,
        w: 31,
    };
    let fresh = std::thread::spawn(move || {
        let layer = init::vmamba_like(&target, 5).unwrap();
        let n: usize = layer.dims().io_shape(grid).iter().product();
        let mut y = vec![0.0; n];
        layer
            .forward(&init::input(n, 1), grid, &mut y, Parallelism::Sequential)
            .unwrap();
        y
    })
    .join()
    .unwrap();
    let target = Ss2dConfig::s2l5(16);
    let reused = std::thread::spawn(move || {
        for (cfg, g) in [
            (
                Ss2dConfig::vanilla(16),
                Grid {
                    batch: 1,
                    h: 40,
                    w: 41,
                },
            ),
            (
                Ss2dConfig::s1l8(32),
                Grid {
                    batch: 3,
                    h: 7,
                    w: 30,
                },
            ),
        ] {
            let layer = init::vmamba_like(&cfg, 9).unwrap();
            let n: usize = layer.dims().io_shape(g).iter().product();
            let mut y = vec![0.0; n];
            layer
                .forward(&init::input(n, 2), g, &mut y, Parallelism::Sequential)
                .unwrap();
        }
        let layer = init::vmamba_like(&target, 5).unwrap();
        let n: usize = layer.dims().io_shape(grid).iter().product();
        let mut y = vec![0.0; n];
        layer
            .forward(&init::input(n, 1), grid, &mut y, Parallelism::Sequential)
            .unwrap();
        y
    })
    .join()
    .unwrap();
    assert!(bits(&fresh) == bits(&reused));
}
