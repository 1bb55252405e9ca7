//! The layer's forward: backends, options, stage timing, intermediates.

use super::*;

/// The stages of a forward, as timed by [`StageTimes`].
pub const STAGES: [&str; 5] = ["gemm_in", "conv", "scan", "norm_gate", "gemm_out"];

/// Wall time of each stage of one forward. Where `in_proj`'s x product and the conv run as
/// one pass (channel-last activations with a conv, no intermediates requested), that pass's
/// wall time is split between `gemm_in` and `conv` in proportion to the time its work items
/// spent in each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// `in_proj` (+ bias, + the z activation).
    pub gemm_in: Duration,
    /// Depthwise conv (+ bias) and SiLU.
    pub conv: Duration,
    /// The SS2D scan (or cascade2d).
    pub scan: Duration,
    /// Out-norm, `_oact` GELU and the z gate.
    pub norm_gate: Duration,
    /// `out_proj` (+ bias).
    pub gemm_out: Duration,
}

impl StageTimes {
    /// The sum of the stages.
    pub fn total(&self) -> Duration {
        self.gemm_in + self.conv + self.scan + self.norm_gate + self.gemm_out
    }

    /// The stages in [`STAGES`] order.
    pub fn as_array(&self) -> [Duration; 5] {
        [
            self.gemm_in,
            self.conv,
            self.scan,
            self.norm_gate,
            self.gemm_out,
        ]
    }
}

/// The intermediates of one forward, in the layouts of VMamba's golden `debug.*` tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Intermediates {
    /// `debug.in_proj_out`: `in_proj` output (x and z) in the module layout,
    /// `(B, d_proj, H, W)` or `(B, H, W, d_proj)`.
    pub in_proj_out: Vec<f32>,
    /// `debug.conv2d_out`: conv output before SiLU, always `(B, d_inner, H, W)` (empty
    /// without a conv).
    pub conv2d_out: Vec<f32>,
    /// `debug.out_norm_in`: the scan output in the module layout.
    pub out_norm_in: Vec<f32>,
    /// `debug.out_norm_out`: the out-norm output in the module layout.
    pub out_norm_out: Vec<f32>,
}

/// Which implementation computes a forward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The production path: `gemm` products, vectorized conv and norm, the fast scan.
    #[default]
    Fast,
    /// As `Fast`, but always with the unfused scan (`ss2d_scan_unfused`).
    Unfused,
    /// The scalar reference: naive products, conv and norm; the scalar reference selective
    /// scan (`ss2d_core::reference`) between cross-scan and merge. Single-threaded.
    Reference,
}

/// Options of [`Ss2d::forward_with`].
#[derive(Debug, Default)]
pub struct ForwardOptions<'a> {
    /// Which implementation.
    pub backend: Backend,
    /// Threads.
    pub par: Parallelism<'a>,
    /// Where to record per-stage wall times (overwritten).
    pub times: Option<&'a mut StageTimes>,
    /// Where to record the intermediates (overwritten).
    pub debug: Option<&'a mut Intermediates>,
}

impl Ss2d {
    /// Runs the layer on `input` (`(B, d_model, H, W)` or `(B, H, W, d_model)` per the
    /// layout) into `output` (same shape), on the fast backend.
    pub fn forward(
        &self,
        input: &[f32],
        grid: Grid,
        output: &mut [f32],
        par: Parallelism<'_>,
    ) -> Result<(), LayerError> {
        self.forward_with(
            input,
            grid,
            output,
            ForwardOptions {
                par,
                ..ForwardOptions::default()
            },
        )
    }

    /// [`Ss2d::forward`] with a backend choice, stage timing and intermediates. Validates the
    /// buffers first; nothing is written to `output` on error.
    pub fn forward_with(
        &self,
        input: &[f32],
        grid: Grid,
        output: &mut [f32],
        opts: ForwardOptions<'_>,
    ) -> Result<(), LayerError> {
        let d = &self.dims;
        let io = grid.elements(d.d_model)?;
        grid.elements(d.d_proj())?;
        if input.len() != io {
            return Err(LayerError::Buffer {
                which: "input",
                expected: io,
                actual: input.len(),
            });
        }
        if output.len() != io {
            return Err(LayerError::Buffer {
                which: "output",
                expected: io,
                actual: output.len(),
            });
        }
        let shape = d.scan_shape(grid);
        shape.validate(&self.scan_weights())?;
        if io == 0 {
            // An empty batch or grid: nothing to read or write, no stage runs.
            if let Some(times) = opts.times {
                *times = StageTimes::default();
            }
            return Ok(());
        }
        let ForwardOptions {
            backend,
            par,
            times,
            debug,
        } = opts;
        let par = if backend == Backend::Reference {
            Parallelism::Sequential
        } else {
            par
        };
        let mut t = StageTimes::default();
        let result = self.run(input, grid, output, backend, par, &mut t, debug);
        if let Some(times) = times {
            *times = t;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        input: &[f32],
        grid: Grid,
        output: &mut [f32],
        backend: Backend,
        par: Parallelism<'_>,
        t: &mut StageTimes,
        mut debug: Option<&mut Intermediates>,
    ) -> Result<(), LayerError> {
        let d = &self.dims;
        let w = &self.weights;
        let (b, l) = (grid.batch, grid.seqlen()?);
        let (dm, di) = (d.d_model, d.d_inner);
        let bdl = b * di * l;
        let naive = backend == Backend::Reference;
        // The fast backends run channel-last inside, whatever the module layout: a
        // channel-first input is read through strides by in_proj, and out_proj's result is
        // transposed into place. The channel-last stages (conv on channel vectors, the scan
        // without transposes, the norm along contiguous channels) measured faster than the
        // channel-first ones (s1l8 2.36 against 2.67 ms, s2l5 4.88 against 6.00 ms, 1 thread).
        // `cf` is the layout of the activations in between (the cascade scan runs on
        // channel-first data only, as upstream).
        let cf_io = d.channel_first;
        let cascade = matches!(d.forward.scan(), ScanKind::Cascade2d);
        let cf = cf_io && (naive || cascade);
        // An intermediate in the module layout (for `debug`).
        let module_layout = |v: &[f32], c: usize| {
            if cf_io && !cf {
                ops::to_channel_first(false, v, b, l, c)
            } else {
                v.to_vec()
            }
        };

        // 1-2. in_proj, split, z activation: the x and z products (+ bias, z's SiLU) in one
        // parallel pass. The channel-first fast path leaves x and z tiled (`ops` module
        // docs): the conv gathers its planes from the tiles and the gate reads z's tiles.
        // With intermediates requested, the activations run as separate (elementwise, so
        // bitwise identical) passes after the products are recorded.
        let t0 = Instant::now();
        let tiled = cf && !naive;
        let fuse = debug.is_none();
        let bias = w.in_proj_bias.as_deref();
        let z_silu = d.forward.z == ZBranch::Silu;
        let mut x = crate::pool::take(bdl);
        let mut z = d.forward.has_z().then(|| crate::pool::take(bdl));
        // Channel-last activations with a conv and no intermediates: both products and the
        // conv run as one pass (`ops::linear_conv_cl`) below, block by block, so the input is
        // read once for both products.
        let conv_fused = !naive && !cf && fuse && w.conv2d_weight.is_some();
        let mut projs = Vec::new();
        if !conv_fused {
            projs.push(ops::Proj {
                w: &w.in_proj_weight[..di * dm],
                wt: &self.proj_t[0],
                out: &mut x,
                tail: ops::Tail {
                    bias: bias.map(|b| &b[..di]),
                    silu: false,
                },
            });
        }
        // With the fused conv, z's product runs in that pass too (the input read once).
        if let Some(z) = z.as_deref_mut().filter(|_| !conv_fused) {
            projs.push(ops::Proj {
                w: &w.in_proj_weight[di * dm..],
                wt: &self.proj_t[1],
                out: z,
                tail: ops::Tail {
                    bias: bias.map(|b| &b[di..]),
                    silu: z_silu && fuse,
                },
            });
        }
        // A channel-first input of the channel-last path is read through strides (measured
        // faster than transposing it first: s1l8 gemm_in 0.45-0.47 against 0.50-0.53 ms).
        if !projs.is_empty() {
            ops::linear(naive, cf, cf_io && !cf, di, dm, input, b, l, projs, par);
        }
        if let Some(dbg) = debug.as_deref_mut() {
            let module = |v: &[f32]| {
                if tiled {
                    ops::untile(cf, v, b, l, di)
                } else {
                    module_layout(v, di)
                }
            };
            dbg.in_proj_out = match z.as_deref() {
                Some(z) => ops::concat_channels(cf_io, &module(&x), &module(z), b, l, di),
                None => module(&x),
            };
        }
        if let Some(z) = z.as_deref_mut().filter(|_| z_silu && !fuse) {
            ops::silu_inplace(naive, z, par);
        }
        t.gemm_in = t0.elapsed();

        // 3-5. depthwise conv (+ bias), SiLU: one parallel pass (the conv reads x's tiles on
        // the channel-first fast path); without a conv, x's tiles are copied into place with
        // the SiLU.
        let t0 = Instant::now();
        let mut xc = crate::pool::take(bdl);
        let conv = w.conv2d_weight.as_deref().map(|cw| ops::ConvArgs {
            k: d.d_conv,
            weight: cw,
            taps: &self.conv_taps,
            bias: w.conv2d_bias.as_deref(),
            channels: di,
            h: grid.h,
            w: grid.w,
        });
        if let (true, Some(conv)) = (conv_fused, &conv) {
            let parts = ops::PartTimes::default();
            let x_bias = bias.map(|b| &b[..di]);
            let wt = &self.proj_t[0];
            let zp = z.as_deref_mut().map(|z| ops::Proj {
                w: &w.in_proj_weight[di * dm..],
                wt: &self.proj_t[1],
                out: z,
                tail: ops::Tail {
                    bias: bias.map(|b| &b[di..]),
                    silu: z_silu,
                },
            });
            ops::linear_conv_cl(
                cf_io, dm, input, wt, x_bias, conv, b, &mut x, &mut xc, zp, &parts, par,
            );
            // One pass: its wall time split between the two stages in proportion to the time
            // its items spent in each.
            let (g, c) = parts.split(t0.elapsed());
            t.gemm_in += g;
            t.conv = c;
        } else if let Some(conv) = &conv {
            ops::dwconv(naive, cf, conv, &x, tiled, b, &mut xc, fuse, par);
            if let Some(dbg) = debug.as_deref_mut() {
                dbg.conv2d_out = ops::to_channel_first(cf, &xc, b, l, di);
                ops::silu_inplace(naive, &mut xc, par);
            }
        } else if tiled {
            let silu = ops::Tail {
                bias: None,
                silu: true,
            };
            ops::untile_into(&x, di, b, l, &mut xc, silu, par);
        } else {
            std::mem::swap(&mut x, &mut xc);
            ops::silu_inplace(naive, &mut xc, par);
        }
        crate::pool::give(x);
        let x = xc;
        if !conv_fused {
            t.conv = t0.elapsed();
        }

        // 6-11. the scan.
        let t0 = Instant::now();
        // Every scan writes all of y (stale contents are fine): no serial clearing pass.
        let mut y = crate::pool::take(bdl);
        let shape = Ss2dScanShape {
            channel_first: cf,
            ..d.scan_shape(grid)
        };
        let sw = self.scan_weights();
        match d.forward.scan() {
            ScanKind::Cross(_) => match backend {
                Backend::Fast => scan_core(&shape, &sw, &x, &mut y, par)?,
                Backend::Unfused => {
                    crate::unfused::ss2d_scan_unfused(&shape, &sw, &x, &mut y, par)?
                }
                Backend::Reference => reference::scan(&shape, &sw, &x, &mut y)?,
            },
            ScanKind::Cascade2d => cascade::cascade2d(&shape, &sw, &x, &mut y, naive, par)?,
        }
        crate::pool::give(x);
        if let Some(dbg) = debug.as_deref_mut() {
            dbg.out_norm_in = module_layout(&y, di);
        }
        // The scan output in the layout of the activations, for recomputing the plain norm
        // below (only where GELU or the gate follow it).
        let recompute = d.forward.has_z() || d.forward.out_gelu;
        let y_dbg = debug.as_ref().filter(|_| recompute).map(|_| y.to_vec());
        t.scan = t0.elapsed();

        // 12-13. out-norm, GELU, gate. Channel-first output is tiled by position blocks.
        let t0 = Instant::now();
        let norm = ops::NormArgs {
            kind: d.forward.out_norm,
            weight: w.out_norm_weight.as_deref(),
            bias: w.out_norm_bias.as_deref(),
            gelu: d.forward.out_gelu,
            channels: di,
        };
        let mut yn = crate::pool::take(bdl);
        ops::norm_gate(naive, cf, &norm, &y, z.as_deref(), b, l, &mut yn, par);
        crate::pool::give(y);
        if let Some(z) = z {
            crate::pool::give(z);
        }
        t.norm_gate = t0.elapsed();
        if let Some(dbg) = debug {
            dbg.out_norm_out = if recompute {
                // The golden out_norm_out is before the GELU and the gate: recompute it.
                let plain = ops::NormArgs {
                    gelu: false,
                    ..norm
                };
                let mut yn2 = vec![0.0f32; bdl];
                ops::norm_gate(
                    naive,
                    cf,
                    &plain,
                    y_dbg.as_deref().unwrap_or(&[]),
                    None,
                    b,
                    l,
                    &mut yn2,
                    par,
                );
                module_layout(&ops::untile(cf, &yn2, b, l, di), di)
            } else {
                module_layout(&ops::untile(cf, &yn, b, l, di), di)
            };
        }

        // 14. out_proj (+ bias).
        let t0 = Instant::now();
        let wo = &w.out_proj_weight;
        let bias = w.out_proj_bias.as_deref();
        ops::linear_from_tiles(
            naive,
            cf,
            cf_io,
            wo,
            &self.proj_t[2],
            dm,
            di,
            &yn,
            b,
            l,
            output,
            bias,
            par,
        );
        crate::pool::give(yn);
        t.gemm_out = t0.elapsed();
        Ok(())
    }
}

/// The one switch point of the fast path's scan: the fused scan (same signature as
/// `ss2d_std::unfused::ss2d_scan_unfused`, which [`Backend::Unfused`] keeps).
fn scan_core(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), CoreError> {
    crate::fused::ss2d_scan(shape, weights, x, y_out, par)
}
