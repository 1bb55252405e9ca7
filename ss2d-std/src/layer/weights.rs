//! The layer's weights and their loading by state_dict name.

use super::*;

/// The weights of one SS2D module, owned, row-major, under VMamba's names (`docs/semantics.md`
/// section 5). Linear weights are stored `(O, I)` whatever the checkpoint held
/// (`(O, I)` or `(O, I, 1, 1)`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Ss2dWeights {
    /// `in_proj.weight` `(d_proj, d_model)`.
    pub in_proj_weight: Vec<f32>,
    /// `in_proj.bias` `(d_proj,)`, when present.
    pub in_proj_bias: Option<Vec<f32>>,
    /// `conv2d.weight` `(d_inner, 1, k, k)`, when there is a conv.
    pub conv2d_weight: Option<Vec<f32>>,
    /// `conv2d.bias` `(d_inner,)`, with `conv_bias`.
    pub conv2d_bias: Option<Vec<f32>>,
    /// `x_proj_weight` `(4, R + 2N, d_inner)`.
    pub x_proj_weight: Vec<f32>,
    /// `dt_projs_weight` `(4, d_inner, R)`.
    pub dt_projs_weight: Vec<f32>,
    /// `dt_projs_bias` `(4, d_inner)`.
    pub dt_projs_bias: Vec<f32>,
    /// `A_logs` `(4 * d_inner, N)`.
    pub a_logs: Vec<f32>,
    /// `Ds` `(4 * d_inner,)`.
    pub ds: Vec<f32>,
    /// `out_norm.weight` `(d_inner,)` (LayerNorm out-norm only).
    pub out_norm_weight: Option<Vec<f32>>,
    /// `out_norm.bias` `(d_inner,)` (LayerNorm out-norm only).
    pub out_norm_bias: Option<Vec<f32>>,
    /// `out_proj.weight` `(d_model, d_inner)`.
    pub out_proj_weight: Vec<f32>,
    /// `out_proj.bias` `(d_model,)`, when present.
    pub out_proj_bias: Option<Vec<f32>>,
}

/// A borrowed tensor: shape and row-major data.
pub type TensorRef<'t> = (&'t [usize], &'t [f32]);

/// Reads one tensor by full name, checking its data length against its shape.
fn fetch<'t>(
    lookup: &dyn Fn(&str) -> Option<TensorRef<'t>>,
    name: &str,
) -> Result<Option<TensorRef<'t>>, LayerError> {
    match lookup(name) {
        None => Ok(None),
        Some((shape, data)) => {
            let n = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or(LayerError::Overflow {
                    what: "tensor shape",
                })?;
            if n != data.len() {
                return Err(LayerError::TensorLength {
                    name: name.to_string(),
                    expected: n,
                    actual: data.len(),
                });
            }
            Ok(Some((shape, data)))
        }
    }
}

struct Loader<'l, 't> {
    lookup: &'l dyn Fn(&str) -> Option<TensorRef<'t>>,
    prefix: &'l str,
}

impl<'t> Loader<'_, 't> {
    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn optional(&self, name: &str) -> Result<Option<TensorRef<'t>>, LayerError> {
        fetch(self.lookup, &self.full(name))
    }

    fn required(&self, name: &str) -> Result<TensorRef<'t>, LayerError> {
        self.optional(name)?
            .ok_or_else(|| LayerError::MissingTensor {
                name: self.full(name),
            })
    }

    fn shape_err(&self, name: &str, expected: &[usize], actual: &[usize]) -> LayerError {
        LayerError::TensorShape {
            name: self.full(name),
            expected: expected.to_vec(),
            actual: actual.to_vec(),
        }
    }

    /// A tensor of exactly `expected` shape.
    fn exact(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LayerError> {
        let (shape, data) = self.required(name)?;
        if shape != expected {
            return Err(self.shape_err(name, expected, shape));
        }
        Ok(data.to_vec())
    }

    fn exact_opt(&self, name: &str, expected: &[usize]) -> Result<Option<Vec<f32>>, LayerError> {
        match self.optional(name)? {
            None => Ok(None),
            Some(_) => self.exact(name, expected).map(Some),
        }
    }

    /// A linear weight `(o, i)` or `(o, i, 1, 1)`.
    fn linear(&self, name: &str, o: usize, i: usize) -> Result<Vec<f32>, LayerError> {
        let (shape, data) = self.required(name)?;
        if shape != [o, i] && shape != [o, i, 1, 1] {
            return Err(self.shape_err(name, &[o, i], shape));
        }
        Ok(data.to_vec())
    }
}

/// A loaded SS2D module: validated configuration plus weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Ss2d {
    pub(super) dims: Ss2dDims,
    pub(super) weights: Ss2dWeights,
    /// `conv2d.weight` transposed to `(k*k, d_inner)` for the channel-last conv.
    pub(super) conv_taps: Vec<f32>,
    /// The products' weights transposed to `(in, out)` for `ss2d_core::gemm`: `in_proj`'s x
    /// rows, its z rows (empty without z), `out_proj`.
    pub(super) proj_t: [Vec<f32>; 3],
}

impl Ss2d {
    /// Loads a module's weights by name from `lookup` (full name = `prefix` + VMamba name, e.g.
    /// prefix `layers.0.blocks.1.op.` for a VSSM checkpoint, or `""`), validating the
    /// configuration and every shape. Tensors the configuration does not use are ignored,
    /// except `conv2d.weight` without a conv and `conv2d.bias` without `conv_bias`, which are
    /// errors (the configuration disagrees with the checkpoint).
    pub fn from_tensors<'t>(
        config: &Ss2dConfig,
        prefix: &str,
        lookup: &dyn Fn(&str) -> Option<TensorRef<'t>>,
    ) -> Result<Ss2d, LayerError> {
        let dims = config.resolve()?;
        let ld = Loader { lookup, prefix };
        let (dm, di, n, r) = (dims.d_model, dims.d_inner, dims.d_state, dims.dt_rank);
        let dp = dims.d_proj();
        let v0 = dims.forward.core.is_v0();

        // A_logs and dt_projs_weight first: they carry d_state and dt_rank.
        let (shape, _) = ld.required("A_logs")?;
        if let [rows, cols] = *shape {
            if rows == K * di && cols != n {
                return Err(LayerError::DStateMismatch {
                    config: n,
                    a_logs: cols,
                });
            }
        }
        let a_logs = ld.exact("A_logs", &[K * di, n])?;
        let (shape, _) = ld.required("dt_projs_weight")?;
        if let [k, d, rr] = *shape {
            if k == K && d == di && rr != r {
                return Err(LayerError::DtRankMismatch {
                    config: r,
                    dt_projs_weight: rr,
                });
            }
        }
        let dt_projs_weight = ld.exact("dt_projs_weight", &[K, di, r])?;

        let in_proj_weight = ld.linear("in_proj.weight", dp, dm)?;
        let in_proj_bias = if v0 {
            None
        } else {
            ld.exact_opt("in_proj.bias", &[dp])?
        };
        let (conv2d_weight, conv2d_bias) = if dims.with_conv() {
            let k = dims.d_conv;
            let w = ld.exact("conv2d.weight", &[di, 1, k, k])?;
            let b = if dims.conv_bias {
                Some(ld.exact("conv2d.bias", &[di])?)
            } else {
                if ld.optional("conv2d.bias")?.is_some() {
                    return Err(LayerError::UnexpectedTensor {
                        name: ld.full("conv2d.bias"),
                        reason: "conv_bias is false",
                    });
                }
                None
            };
            (Some(w), b)
        } else {
            if ld.optional("conv2d.weight")?.is_some() {
                return Err(LayerError::UnexpectedTensor {
                    name: ld.full("conv2d.weight"),
                    reason: "d_conv <= 1 (no conv)",
                });
            }
            (None, None)
        };
        let x_proj_weight = ld.exact("x_proj_weight", &[K, r + 2 * n, di])?;
        let dt_projs_bias = ld.exact("dt_projs_bias", &[K, di])?;
        let ds = ld.exact("Ds", &[K * di])?;
        let (out_norm_weight, out_norm_bias) = if dims.forward.out_norm == OutNorm::LayerNorm {
            (
                Some(ld.exact("out_norm.weight", &[di])?),
                Some(ld.exact("out_norm.bias", &[di])?),
            )
        } else {
            (None, None)
        };
        let out_proj_weight = ld.linear("out_proj.weight", dm, di)?;
        let out_proj_bias = if v0 {
            None
        } else {
            ld.exact_opt("out_proj.bias", &[dm])?
        };
        Ss2d::from_weights(
            dims,
            Ss2dWeights {
                in_proj_weight,
                in_proj_bias,
                conv2d_weight,
                conv2d_bias,
                x_proj_weight,
                dt_projs_weight,
                dt_projs_bias,
                a_logs,
                ds,
                out_norm_weight,
                out_norm_bias,
                out_proj_weight,
                out_proj_bias,
            },
        )
    }

    /// [`Ss2d::from_tensors`] over a map from name to `(shape, data)`.
    pub fn from_map<S: std::hash::BuildHasher>(
        config: &Ss2dConfig,
        prefix: &str,
        map: &std::collections::HashMap<String, (Vec<usize>, Vec<f32>), S>,
    ) -> Result<Ss2d, LayerError> {
        let lookup = |name: &str| map.get(name).map(|(s, d)| (s.as_slice(), d.as_slice()));
        Ss2d::from_tensors(config, prefix, &lookup)
    }

    /// A module from resolved sizes and owned weights, checking every length.
    pub fn from_weights(dims: Ss2dDims, weights: Ss2dWeights) -> Result<Ss2d, LayerError> {
        let (dm, di, n, r, k) = (
            dims.d_model,
            dims.d_inner,
            dims.d_state,
            dims.dt_rank,
            dims.d_conv,
        );
        let dp = dims.d_proj();
        let check = |name: &str, v: &[f32], shape: &[usize]| -> Result<(), LayerError> {
            let want: usize = shape.iter().product();
            if v.len() == want {
                Ok(())
            } else {
                Err(LayerError::TensorLength {
                    name: name.to_string(),
                    expected: want,
                    actual: v.len(),
                })
            }
        };
        let need = |name: &str, v: &Option<Vec<f32>>, want: bool| -> Result<(), LayerError> {
            match (v.is_some(), want) {
                (true, true) | (false, false) => Ok(()),
                (false, true) => Err(LayerError::MissingTensor {
                    name: name.to_string(),
                }),
                (true, false) => Err(LayerError::UnexpectedTensor {
                    name: name.to_string(),
                    reason: "the configuration does not use it",
                }),
            }
        };
        let w = &weights;
        check("in_proj.weight", &w.in_proj_weight, &[dp, dm])?;
        if let Some(b) = &w.in_proj_bias {
            check("in_proj.bias", b, &[dp])?;
        }
        need("conv2d.weight", &w.conv2d_weight, dims.with_conv())?;
        need("conv2d.bias", &w.conv2d_bias, dims.conv_bias)?;
        if let Some(c) = &w.conv2d_weight {
            check("conv2d.weight", c, &[di, k, k])?;
        }
        if let Some(b) = &w.conv2d_bias {
            check("conv2d.bias", b, &[di])?;
        }
        check("x_proj_weight", &w.x_proj_weight, &[K, r + 2 * n, di])?;
        check("dt_projs_weight", &w.dt_projs_weight, &[K, di, r])?;
        check("dt_projs_bias", &w.dt_projs_bias, &[K, di])?;
        check("A_logs", &w.a_logs, &[K * di, n])?;
        check("Ds", &w.ds, &[K * di])?;
        let ln = dims.forward.out_norm == OutNorm::LayerNorm;
        need("out_norm.weight", &w.out_norm_weight, ln)?;
        need("out_norm.bias", &w.out_norm_bias, ln)?;
        if let (Some(a), Some(b)) = (&w.out_norm_weight, &w.out_norm_bias) {
            check("out_norm.weight", a, &[di])?;
            check("out_norm.bias", b, &[di])?;
        }
        check("out_proj.weight", &w.out_proj_weight, &[dm, di])?;
        if let Some(b) = &w.out_proj_bias {
            check("out_proj.bias", b, &[dm])?;
        }
        let conv_taps = match &w.conv2d_weight {
            Some(c) => {
                let kk = k * k;
                let mut t = vec![0.0f32; kk * di];
                for ch in 0..di {
                    for tap in 0..kk {
                        t[tap * di + ch] = c[ch * kk + tap];
                    }
                }
                t
            }
            None => Vec::new(),
        };
        let ipw = &weights.in_proj_weight;
        let proj_t = [
            super::ops::transpose(&ipw[..di * dm], di, dm),
            super::ops::transpose(&ipw[di * dm..], dp - di, dm),
            super::ops::transpose(&weights.out_proj_weight, dm, di),
        ];
        Ok(Ss2d {
            dims,
            weights,
            conv_taps,
            proj_t,
        })
    }

    /// The resolved configuration.
    pub fn dims(&self) -> &Ss2dDims {
        &self.dims
    }

    /// The weights.
    pub fn weights(&self) -> &Ss2dWeights {
        &self.weights
    }

    /// Number of parameters (every weight element).
    pub fn param_count(&self) -> usize {
        let w = &self.weights;
        let opt = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, Vec::len);
        w.in_proj_weight.len()
            + opt(&w.in_proj_bias)
            + opt(&w.conv2d_weight)
            + opt(&w.conv2d_bias)
            + w.x_proj_weight.len()
            + w.dt_projs_weight.len()
            + w.dt_projs_bias.len()
            + w.a_logs.len()
            + w.ds.len()
            + opt(&w.out_norm_weight)
            + opt(&w.out_norm_bias)
            + w.out_proj_weight.len()
            + opt(&w.out_proj_bias)
    }

    /// The scan weights, borrowed.
    pub(super) fn scan_weights(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.weights.x_proj_weight,
            dt_projs_weight: &self.weights.dt_projs_weight,
            dt_projs_bias: &self.weights.dt_projs_bias,
            a_logs: &self.weights.a_logs,
            ds: &self.weights.ds,
        }
    }
}
