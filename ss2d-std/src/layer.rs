//! The SS2D layer: VMamba's `SS2D` module (semantics.md sections 2, 3 and 5) with its weights,
//! forward on a `(B, C, H, W)` or `(B, H, W, C)` grid.
//!
//! ```text
//! xz   = in_proj(x)                          GEMM, (+ bias when `in_proj.bias` is present)
//! x, z = split(xz)                           z = SiLU(z) unless `_nozact`; no z for `_noz`
//! x    = SiLU(dwconv_k(x) (+ conv bias))     depthwise k x k, zero padding (k-1)/2; k <= 1: no conv
//! y    = ss2d_scan(x)                        cross-scan, x_proj, dt_proj, selective scan, merge
//!                                            (cascade2d for v052dc)
//! y    = out_norm(y)                         LayerNorm over channels (eps 1e-5, affine)
//! y    = GELU(y) if `_oact`;  y = y * z if z
//! out  = out_proj(y)                         GEMM (+ bias when `out_proj.bias` is present)
//! ```
//!
//! [`Ss2dConfig`] holds the constructor arguments (validated by [`Ss2dConfig::resolve`] into
//! [`Ss2dDims`]), [`ForwardType`] parses VMamba's `forward_type` strings, and [`Ss2d`] owns the
//! weights under VMamba's state_dict names (loaded by name through a lookup,
//! [`Ss2d::from_tensors`], optionally under a key prefix such as `layers.0.blocks.1.op.`).
//!
//! ## Layouts
//! Channel-first data stays channel-first and channel-last stays channel-last end to end: the
//! scan runs in the module's layout, the depthwise conv and the LayerNorm have one loop nest per
//! layout with contiguous inner loops (positions for channel-first, channels for channel-last).
//!
//! ## GEMMs
//! `in_proj` and `out_proj` are products by a `(O, I)` weight over every position. They come
//! from the `gemm` crate (through `ss2d-gemm`, a bounds-checked safe wrapper), chosen by this
//! benchmark against `matrixmultiply` 0.3.11 at the layer shapes (L = 56 x 56 = 3136 positions,
//! one thread, median of 201 interleaved runs, microseconds per product, quiet 16-core Xeon
//! with AVX-512; `gemm` 0.19 with and without its `x86-v4` feature, which adds runtime-detected
//! AVX-512 kernels):
//!
//! | product (M x K x N) | matrixmultiply | gemm (AVX2) | gemm `x86-v4` |
//! |---|---|---|---|
//! | cf in_proj s1l8: (96 x 96) @ (96 x 3136) | 962-1181 | 876-1249 | 473 |
//! | cf in_proj s2l5: (192 x 96) @ (96 x 3136) | 1907-2383 | 2183-2561 | 972 |
//! | cf out_proj s2l5: (96 x 192) @ (192 x 3136) | 1889-2517 | 1591-2594 | 1010 |
//! | cl in_proj v0: (3136 x 96) @ (96 x 384) | 3463-4392 | 2973-4625 | 1627 |
//! | cl out_proj v0: (3136 x 192) @ (192 x 96) | 1851-2280 | 1420-1506 | 1159 |
//! | cl (3136 x 96) @ (96 x 192) | 1886-2111 | 1753-2193 | 1116 |
//!
//! (ranges: two runs.) On the 2-core development machine (AVX-512, heavily shared) the
//! `x86-v4` build measured 770 / 1490 / 1569 / 2938 / 1556 / 1433 us against matrixmultiply's
//! 1305 / 2734 / 2712 / 4918 / 2671 / 2468 us. Without AVX-512 the two crates are within noise
//! of each other; with it `gemm` is about twice as fast, so `gemm` (with `x86-v4`) it is.
//! Splitting the channel-first products by output rows instead of by positions costs 30-50%
//! with either crate (measured), so the products are split by positions only.
//!
//! ## Determinism
//! The products are cut into blocks of [`GEMM_BLOCK`] positions, a constant: the same `gemm`
//! calls run whatever the thread count, and threads only decide who runs which block (`gemm`'s
//! own threading stays off). The conv and the LayerNorm give every output element one
//! fixed-order expression, and the scan is bitwise deterministic by contract. So the output is
//! bitwise identical for every [`Parallelism`].
//!
//! ## Backends
//! [`Backend::Fast`] is the production path (the fused scan, through one private switch
//! point, `scan_core`); [`Backend::Unfused`] runs the unfused scan instead;
//! [`Backend::Reference`] is a scalar path sharing as little as possible with the others:
//! naive triple-loop products, naive conv and norm, and `ss2d_core`'s scalar reference
//! selective scan between the cross-scan and the merge.

use std::fmt;
use std::time::{Duration, Instant};

use ss2d_core::Error as CoreError;

use crate::cross::ScanMode;
use crate::unfused::{Ss2dScanShape, Ss2dScanWeights};
use crate::Parallelism;

mod cascade;
pub mod init;
mod ops;
mod reference;

pub use ops::GEMM_BLOCK;

/// Directions of the cross-scan (`k_group`).
const K: usize = 4;

/// LayerNorm epsilon (PyTorch's default, used by every SS2D norm).
pub const LN_EPS: f32 = 1e-5;

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

// ------------------------------------------------------------------------------------------
// Errors

/// Everything that can be wrong with a layer's configuration, weights or input. `Display` is
/// one line naming the field or tensor, and the expected and actual values.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LayerError {
    /// `forward_type` is not one VMamba defines.
    UnknownForwardType {
        /// The string given.
        forward_type: String,
    },
    /// `forward_type` exists upstream but is not supported here (or is broken upstream).
    UnsupportedForwardType {
        /// The string given.
        forward_type: String,
        /// Why.
        reason: &'static str,
    },
    /// `d_model` is zero.
    ZeroDModel,
    /// `ssm_ratio` is NaN, infinite, zero or negative.
    SsmRatio {
        /// The value given.
        ssm_ratio: f64,
    },
    /// `d_inner = int(ssm_ratio * d_model)` is zero or not representable.
    DInner {
        /// `ssm_ratio`.
        ssm_ratio: f64,
        /// `d_model`.
        d_model: usize,
    },
    /// `d_state` outside `1..=256`.
    DState {
        /// The value given.
        d_state: usize,
    },
    /// A fixed `dt_rank` of zero.
    ZeroDtRank,
    /// An even `d_conv > 1` (padding `(k-1)/2` would shrink the grid).
    EvenDConv {
        /// The value given.
        d_conv: usize,
    },
    /// The forward type does not exist in this layout upstream (`v0` is channel-last only,
    /// `v052dc` channel-first only).
    Layout {
        /// The forward type.
        forward_type: String,
        /// `channel_first` as given.
        channel_first: bool,
    },
    /// A tensor the configuration needs is missing.
    MissingTensor {
        /// Full name (prefix included).
        name: String,
    },
    /// A tensor the configuration rules out is present (e.g. `conv2d.bias` with
    /// `conv_bias = false`).
    UnexpectedTensor {
        /// Full name (prefix included).
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A tensor has the wrong shape.
    TensorShape {
        /// Full name (prefix included).
        name: String,
        /// The shape the configuration implies (alternatives are listed in `Display`).
        expected: Vec<usize>,
        /// The shape given.
        actual: Vec<usize>,
    },
    /// A tensor's data length disagrees with its own shape.
    TensorLength {
        /// Full name (prefix included).
        name: String,
        /// Product of the shape.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// `d_state` disagrees with the second dimension of `A_logs`.
    DStateMismatch {
        /// `d_state` of the configuration.
        config: usize,
        /// `A_logs.shape[1]`.
        a_logs: usize,
    },
    /// `dt_rank` disagrees with the last dimension of `dt_projs_weight`.
    DtRankMismatch {
        /// The resolved `dt_rank` of the configuration.
        config: usize,
        /// `dt_projs_weight.shape[2]`.
        dt_projs_weight: usize,
    },
    /// A buffer passed to [`Ss2d::forward`] has the wrong number of elements.
    Buffer {
        /// `input` or `output`.
        which: &'static str,
        /// Elements the grid implies.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// The input tensor's shape does not fit the layer.
    InputShape {
        /// What was expected, in words (e.g. `(B, 96, H, W)`).
        expected: String,
        /// The shape given.
        actual: Vec<usize>,
    },
    /// A size computation overflows.
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
    /// The scan (or a product) rejected its input: a bug if it happens after validation.
    Core(CoreError),
}

fn fmt_shape(s: &[usize]) -> String {
    let inner: Vec<String> = s.iter().map(usize::to_string).collect();
    if s.len() == 1 {
        format!("({},)", inner[0])
    } else {
        format!("({})", inner.join(", "))
    }
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::UnknownForwardType { forward_type } => write!(
                f,
                "unknown forward_type `{forward_type}` (known: v0, v0seq, v01..v05, v051d, v052d, \
                 v052dc, v3, with suffixes _noz, _nozact, _oact, _no32, _onnone, _onsoftmax, \
                 _onsigmoid)"
            ),
            LayerError::UnsupportedForwardType {
                forward_type,
                reason,
            } => write!(
                f,
                "forward_type `{forward_type}` is not supported: {reason}"
            ),
            LayerError::ZeroDModel => write!(f, "d_model must be at least 1"),
            LayerError::SsmRatio { ssm_ratio } => {
                write!(f, "ssm_ratio must be finite and positive, got {ssm_ratio}")
            }
            LayerError::DInner { ssm_ratio, d_model } => write!(
                f,
                "d_inner = int(ssm_ratio * d_model) = int({ssm_ratio} * {d_model}) must be a \
                 positive size"
            ),
            LayerError::DState { d_state } => {
                write!(f, "d_state must be in 1..=256, got {d_state}")
            }
            LayerError::ZeroDtRank => write!(f, "dt_rank must be `auto` or at least 1, got 0"),
            LayerError::EvenDConv { d_conv } => write!(
                f,
                "d_conv must be odd (or <= 1 for no conv), got {d_conv}: padding (k-1)/2 would \
                 shrink the grid"
            ),
            LayerError::Layout {
                forward_type,
                channel_first,
            } => write!(
                f,
                "forward_type `{forward_type}` does not run with channel_first={channel_first} \
                 upstream ({})",
                if *channel_first {
                    "v0 is channel-last only"
                } else {
                    "cascade2d fails for channel-last upstream"
                }
            ),
            LayerError::MissingTensor { name } => write!(f, "missing tensor `{name}`"),
            LayerError::UnexpectedTensor { name, reason } => {
                write!(f, "tensor `{name}` is present but {reason}")
            }
            LayerError::TensorShape {
                name,
                expected,
                actual,
            } => {
                let alt = if expected.len() == 2 && name.ends_with("proj.weight") {
                    format!(" or {}", fmt_shape(&[expected[0], expected[1], 1, 1]))
                } else {
                    String::new()
                };
                write!(
                    f,
                    "tensor `{name}` has shape {}, expected {}{alt}",
                    fmt_shape(actual),
                    fmt_shape(expected)
                )
            }
            LayerError::TensorLength {
                name,
                expected,
                actual,
            } => write!(
                f,
                "tensor `{name}` has {actual} elements, its shape needs {expected}"
            ),
            LayerError::DStateMismatch { config, a_logs } => write!(
                f,
                "d_state is {config} but `A_logs` has {a_logs} columns (d_state {a_logs})"
            ),
            LayerError::DtRankMismatch {
                config,
                dt_projs_weight,
            } => write!(
                f,
                "dt_rank is {config} but `dt_projs_weight` has rank {dt_projs_weight}"
            ),
            LayerError::Buffer {
                which,
                expected,
                actual,
            } => write!(
                f,
                "`{which}` has {actual} elements, the grid needs {expected}"
            ),
            LayerError::InputShape { expected, actual } => write!(
                f,
                "input has shape {}, expected {expected}",
                fmt_shape(actual)
            ),
            LayerError::Overflow { what } => write!(f, "size overflow computing {what}"),
            LayerError::Core(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LayerError {}

impl From<CoreError> for LayerError {
    fn from(e: CoreError) -> Self {
        LayerError::Core(e)
    }
}

// ------------------------------------------------------------------------------------------
// Forward types

/// The core of a forward type: which `forward_core` upstream runs (semantics.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoreType {
    /// `v0`: `SS2Dv0` (vanilla VMamba), channel-last, conv bias, z.
    V0,
    /// `v0seq`: `v0` scanning the four directions one at a time (same math).
    V0Seq,
    /// `v01`: cross2d, mamba backend, torch cross-scan.
    V01,
    /// `v02`: cross2d, mamba backend.
    V02,
    /// `v03`: cross2d, oflex backend.
    V03,
    /// `v04`: cross2d, einsum projections.
    V04,
    /// `v05`: cross2d, conv1d projections (the released v2 checkpoints use `v05_noz`).
    V05,
    /// `v051d`: unidirectional ablation (four row-major copies).
    V051d,
    /// `v052d`: bidirectional ablation.
    V052d,
    /// `v052dc`: cascade2d ablation (row pass, then column pass).
    V052dc,
    /// `v3`: cross2d, oflex backend, einsum (`v3_noz` is what the released checkpoints
    /// were trained with).
    V3,
}

impl CoreType {
    /// Upstream's name.
    pub fn name(self) -> &'static str {
        match self {
            CoreType::V0 => "v0",
            CoreType::V0Seq => "v0seq",
            CoreType::V01 => "v01",
            CoreType::V02 => "v02",
            CoreType::V03 => "v03",
            CoreType::V04 => "v04",
            CoreType::V05 => "v05",
            CoreType::V051d => "v051d",
            CoreType::V052d => "v052d",
            CoreType::V052dc => "v052dc",
            CoreType::V3 => "v3",
        }
    }

    /// The scan this core runs.
    pub fn scan(self) -> ScanKind {
        match self {
            CoreType::V051d => ScanKind::Cross(ScanMode::Unidi),
            CoreType::V052d => ScanKind::Cross(ScanMode::Bidi),
            CoreType::V052dc => ScanKind::Cascade2d,
            _ => ScanKind::Cross(ScanMode::Cross2d),
        }
    }

    /// `SS2Dv0` (ignores `d_conv`, `conv_bias`, `act_layer`, `bias`).
    pub fn is_v0(self) -> bool {
        matches!(self, CoreType::V0 | CoreType::V0Seq)
    }
}

/// What the scan stage does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanKind {
    /// Cross-scan, four-direction selective scan, cross-merge ([`ScanMode`]).
    Cross(ScanMode),
    /// `cascade2d` (`v052dc`): affine-free LayerNorm, a row pass (directions 0, 1), affine-free
    /// LayerNorm, a column pass (directions 2, 3); each pass sums its forward output and its
    /// reverse output **without flipping the reverse one back**, as upstream does.
    Cascade2d,
}

/// The z (gate) branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZBranch {
    /// No z (`_noz`): `in_proj` yields `d_inner` channels, no gating.
    None,
    /// `z = SiLU(z)`, `y = y * z` (the default).
    Silu,
    /// `_nozact`: `y = y * z` with z as projected.
    Identity,
}

/// The out-norm (`get_outnorm` upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutNorm {
    /// LayerNorm over channels, eps 1e-5, affine (`out_norm.weight`, `out_norm.bias`).
    LayerNorm,
    /// `_onnone`: identity.
    Identity,
    /// `_onsoftmax`: softmax over the `H*W` positions, per batch item and channel.
    Softmax,
    /// `_onsigmoid`: elementwise sigmoid.
    Sigmoid,
}

/// A parsed `forward_type` string, following upstream's suffix rules exactly: `v0` and `v0seq`
/// are matched whole; otherwise `_no32`, `_oact`, `_noz`, `_nozact` are stripped in that order
/// (each only at the end), then the out-norm suffixes `_onnone`, `_ondwconv3`, `_oncnorm`,
/// `_onsoftmax`, `_onsigmoid`, and the rest names the core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ForwardType {
    /// The string as given.
    pub name: String,
    /// The core.
    pub core: CoreType,
    /// The z branch.
    pub z: ZBranch,
    /// `_oact`: GELU (exact, erf) after the out-norm.
    pub out_gelu: bool,
    /// The out-norm.
    pub out_norm: OutNorm,
}

fn strip<'s>(s: &'s str, tag: &str) -> (bool, &'s str) {
    match s.strip_suffix(tag) {
        Some(rest) => (true, rest),
        None => (false, s),
    }
}

impl ForwardType {
    /// Parses a `forward_type` string (see the type docs).
    pub fn parse(s: &str) -> Result<ForwardType, LayerError> {
        let unsupported = |reason| LayerError::UnsupportedForwardType {
            forward_type: s.to_string(),
            reason,
        };
        let v0 = match s {
            "v0" => Some(CoreType::V0),
            "v0seq" => Some(CoreType::V0Seq),
            _ => None,
        };
        if let Some(core) = v0 {
            return Ok(ForwardType {
                name: s.to_string(),
                core,
                z: ZBranch::Silu,
                out_gelu: false,
                out_norm: OutNorm::LayerNorm,
            });
        }
        if s.starts_with("xv") {
            return Err(unsupported(
                "SS2Dv3 (`xv*`, fused in_proj) is experimental upstream and not implemented",
            ));
        }
        if s.starts_with('m') {
            return Err(unsupported(
                "SS2Dm0 (`m*`, Mamba2 SSD) is experimental upstream and not implemented",
            ));
        }
        let (_no32, rest) = strip(s, "_no32");
        let (oact, rest) = strip(rest, "_oact");
        let (noz, rest) = strip(rest, "_noz");
        let (nozact, rest) = strip(rest, "_nozact");
        let (on_none, rest) = strip(rest, "_onnone");
        let (on_dwconv3, rest) = strip(rest, "_ondwconv3");
        let (on_cnorm, rest) = strip(rest, "_oncnorm");
        let (on_softmax, rest) = strip(rest, "_onsoftmax");
        let (on_sigmoid, rest) = strip(rest, "_onsigmoid");
        let core =
            match rest {
                "v01" => CoreType::V01,
                "v02" => CoreType::V02,
                "v03" => CoreType::V03,
                "v04" => CoreType::V04,
                "v05" => CoreType::V05,
                "v051d" => CoreType::V051d,
                "v052d" => CoreType::V052d,
                "v052dc" => CoreType::V052dc,
                "v3" => CoreType::V3,
                "v2" => return Err(unsupported(
                    "it raises an AssertionError at VMamba HEAD (backend \"core\"); v05 and v3 \
                     are the same math",
                )),
                "v052d3" => {
                    return Err(unsupported(
                        "scans=3 is referenced but not implemented upstream",
                    ))
                }
                _ => {
                    return Err(LayerError::UnknownForwardType {
                        forward_type: s.to_string(),
                    })
                }
            };
        // Upstream's if/elif order: none, cnorm, dwconv3, softmax, sigmoid, else LayerNorm.
        let out_norm = if on_none {
            OutNorm::Identity
        } else if on_cnorm || on_dwconv3 {
            return Err(unsupported(
                "the `_oncnorm` / `_ondwconv3` out-norms (depthwise 3x3 conv) are not implemented",
            ));
        } else if on_softmax {
            OutNorm::Softmax
        } else if on_sigmoid {
            OutNorm::Sigmoid
        } else {
            OutNorm::LayerNorm
        };
        let z = if noz {
            ZBranch::None
        } else if nozact {
            ZBranch::Identity
        } else {
            ZBranch::Silu
        };
        Ok(ForwardType {
            name: s.to_string(),
            core,
            z,
            out_gelu: oact,
            out_norm,
        })
    }

    /// The scan this forward type runs.
    pub fn scan(&self) -> ScanKind {
        self.core.scan()
    }

    /// Whether there is a z branch.
    pub fn has_z(&self) -> bool {
        self.z != ZBranch::None
    }
}

impl std::str::FromStr for ForwardType {
    type Err = LayerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ForwardType::parse(s)
    }
}

impl fmt::Display for ForwardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

// ------------------------------------------------------------------------------------------
// Configuration

/// `dt_rank`: `"auto"` = `ceil(d_model / 16)` (from `d_model`, not `d_inner`), or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DtRank {
    /// `ceil(d_model / 16)`.
    #[default]
    Auto,
    /// A given rank (at least 1).
    Fixed(usize),
}

impl DtRank {
    /// The rank for `d_model`.
    pub fn resolve(self, d_model: usize) -> usize {
        match self {
            DtRank::Auto => d_model.div_ceil(16),
            DtRank::Fixed(r) => r,
        }
    }
}

impl std::str::FromStr for DtRank {
    type Err = String;

    /// `auto` or a positive integer.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(DtRank::Auto);
        }
        match s.parse::<usize>() {
            Ok(0) => Err("dt_rank must be `auto` or at least 1, got 0".into()),
            Ok(r) => Ok(DtRank::Fixed(r)),
            Err(_) => Err(format!(
                "dt_rank must be `auto` or a positive integer, got `{s}`"
            )),
        }
    }
}

impl fmt::Display for DtRank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtRank::Auto => f.write_str("auto"),
            DtRank::Fixed(r) => write!(f, "{r}"),
        }
    }
}

/// The constructor arguments of VMamba's `SS2D` that change the forward (semantics.md
/// section 2). `bias` is not here: `in_proj.bias` / `out_proj.bias` are used when present.
#[derive(Clone, Debug, PartialEq)]
pub struct Ss2dConfig {
    /// Channels of the input and output.
    pub d_model: usize,
    /// State size `N`.
    pub d_state: usize,
    /// `d_inner = int(ssm_ratio * d_model)`.
    pub ssm_ratio: f64,
    /// Rank of the dt projection.
    pub dt_rank: DtRank,
    /// Depthwise conv size (odd; `<= 1` disables the conv). Ignored by `v0` (always 3).
    pub d_conv: usize,
    /// Conv bias. Ignored by `v0` (always true).
    pub conv_bias: bool,
    /// VMamba's `forward_type` string (see [`ForwardType`]).
    pub forward_type: String,
    /// `(B, C, H, W)` when true, `(B, H, W, C)` when false.
    pub channel_first: bool,
}

impl Ss2dConfig {
    /// Upstream's constructor defaults (`d_state 16, ssm_ratio 2, dt_rank auto, d_conv 3,
    /// conv_bias true`) with the given size, forward type and layout.
    pub fn new(d_model: usize, forward_type: &str, channel_first: bool) -> Ss2dConfig {
        Ss2dConfig {
            d_model,
            d_state: 16,
            ssm_ratio: 2.0,
            dt_rank: DtRank::Auto,
            d_conv: 3,
            conv_bias: true,
            forward_type: forward_type.to_string(),
            channel_first,
        }
    }

    /// A VMamba-T s1l8 layer (`vmambav2v_tiny`): `d_state 1, ssm_ratio 1, v05_noz`,
    /// no conv bias, channel-first. Stage 1 has `d_model = 96`.
    pub fn s1l8(d_model: usize) -> Ss2dConfig {
        Ss2dConfig {
            d_state: 1,
            ssm_ratio: 1.0,
            conv_bias: false,
            ..Ss2dConfig::new(d_model, "v05_noz", true)
        }
    }

    /// A VMamba-T s2l5 layer (`vmambav2_tiny`): `d_state 1, ssm_ratio 2, v05_noz`,
    /// no conv bias, channel-first.
    pub fn s2l5(d_model: usize) -> Ss2dConfig {
        Ss2dConfig {
            d_state: 1,
            ssm_ratio: 2.0,
            conv_bias: false,
            ..Ss2dConfig::new(d_model, "v05_noz", true)
        }
    }

    /// A Vanilla-VMamba-T layer (`vmambav0_tiny`): `v0, d_state 16, ssm_ratio 2`, conv bias,
    /// channel-last.
    pub fn vanilla(d_model: usize) -> Ss2dConfig {
        Ss2dConfig::new(d_model, "v0", false)
    }

    /// Validates everything and derives the sizes. Errors name the field: unknown or
    /// unsupported forward types, zero `d_model`, bad `ssm_ratio` (NaN, infinite, <= 0, or
    /// truncating `d_inner` to 0), `d_state` outside `1..=256`, `dt_rank` 0, even `d_conv > 1`,
    /// and layouts upstream does not run (`v0` channel-first, `v052dc` channel-last).
    pub fn resolve(&self) -> Result<Ss2dDims, LayerError> {
        let forward = ForwardType::parse(&self.forward_type)?;
        if self.d_model == 0 {
            return Err(LayerError::ZeroDModel);
        }
        if !self.ssm_ratio.is_finite() || self.ssm_ratio <= 0.0 {
            return Err(LayerError::SsmRatio {
                ssm_ratio: self.ssm_ratio,
            });
        }
        // Python's int(ssm_ratio * d_model): f64 product, truncated.
        let prod = self.ssm_ratio * self.d_model as f64;
        if !(1.0..(isize::MAX as f64)).contains(&prod) {
            return Err(LayerError::DInner {
                ssm_ratio: self.ssm_ratio,
                d_model: self.d_model,
            });
        }
        let d_inner = prod.trunc() as usize;
        if self.d_state == 0 || self.d_state > ss2d_core::MAX_DSTATE {
            return Err(LayerError::DState {
                d_state: self.d_state,
            });
        }
        if self.dt_rank == DtRank::Fixed(0) {
            return Err(LayerError::ZeroDtRank);
        }
        let dt_rank = self.dt_rank.resolve(self.d_model);
        let (d_conv, conv_bias) = if forward.core.is_v0() {
            (3, true)
        } else {
            (self.d_conv, self.conv_bias)
        };
        if d_conv > 1 && d_conv % 2 == 0 {
            return Err(LayerError::EvenDConv { d_conv });
        }
        let layout_ok = match forward.core {
            CoreType::V0 | CoreType::V0Seq => !self.channel_first,
            CoreType::V052dc => self.channel_first,
            _ => true,
        };
        if !layout_ok {
            return Err(LayerError::Layout {
                forward_type: self.forward_type.clone(),
                channel_first: self.channel_first,
            });
        }
        // Sizes used everywhere later: make sure the weights' sizes are representable.
        let proj_rows = dt_rank
            .checked_add(2 * self.d_state)
            .ok_or(LayerError::Overflow {
                what: "dt_rank + 2*d_state",
            })?;
        for (what, a, b) in [
            ("2*d_inner*d_model", d_inner.checked_mul(2), self.d_model),
            (
                "4*d_inner*(dt_rank+2*d_state)",
                d_inner.checked_mul(4),
                proj_rows,
            ),
            (
                "d_inner*d_conv^2",
                Some(d_inner),
                d_conv.saturating_mul(d_conv),
            ),
        ] {
            let n = a.and_then(|a| a.checked_mul(b));
            if n.is_none_or(|n| isize::try_from(n).is_err()) {
                return Err(LayerError::Overflow { what });
            }
        }
        Ok(Ss2dDims {
            d_model: self.d_model,
            d_inner,
            d_state: self.d_state,
            dt_rank,
            d_conv,
            conv_bias: conv_bias && d_conv > 1,
            forward,
            channel_first: self.channel_first,
        })
    }
}

/// A validated configuration with its derived sizes ([`Ss2dConfig::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ss2dDims {
    /// Channels of input and output.
    pub d_model: usize,
    /// `int(ssm_ratio * d_model)`.
    pub d_inner: usize,
    /// `N`.
    pub d_state: usize,
    /// Resolved `R`.
    pub dt_rank: usize,
    /// Effective conv size (3 for `v0`; `<= 1` means no conv).
    pub d_conv: usize,
    /// Effective conv bias (true for `v0`; false without conv).
    pub conv_bias: bool,
    /// The parsed forward type.
    pub forward: ForwardType,
    /// Layout.
    pub channel_first: bool,
}

impl Ss2dDims {
    /// Whether a depthwise conv runs.
    pub fn with_conv(&self) -> bool {
        self.d_conv > 1
    }

    /// Output channels of `in_proj`: `d_inner`, or `2 * d_inner` with a z branch.
    pub fn d_proj(&self) -> usize {
        if self.forward.has_z() {
            2 * self.d_inner
        } else {
            self.d_inner
        }
    }

    /// The scan shape for a grid.
    pub fn scan_shape(&self, grid: Grid) -> Ss2dScanShape {
        Ss2dScanShape {
            batch: grid.batch,
            dim: self.d_inner,
            h: grid.h,
            w: grid.w,
            dstate: self.d_state,
            dt_rank: self.dt_rank,
            mode: match self.forward.scan() {
                ScanKind::Cross(m) => m,
                ScanKind::Cascade2d => ScanMode::Cross2d,
            },
            channel_first: self.channel_first,
        }
    }

    /// The shape of the input (and output) tensor: `(B, d_model, H, W)` or
    /// `(B, H, W, d_model)`.
    pub fn io_shape(&self, grid: Grid) -> [usize; 4] {
        if self.channel_first {
            [grid.batch, self.d_model, grid.h, grid.w]
        } else {
            [grid.batch, grid.h, grid.w, self.d_model]
        }
    }

    /// The grid of an input tensor shape, checking rank, layout and `d_model`.
    pub fn grid_of(&self, shape: &[usize]) -> Result<Grid, LayerError> {
        let bad = || LayerError::InputShape {
            expected: if self.channel_first {
                format!("(B, {}, H, W) (channel-first)", self.d_model)
            } else {
                format!("(B, H, W, {}) (channel-last)", self.d_model)
            },
            actual: shape.to_vec(),
        };
        match (shape, self.channel_first) {
            (&[b, c, h, w], true) if c == self.d_model => Ok(Grid { batch: b, h, w }),
            (&[b, h, w, c], false) if c == self.d_model => Ok(Grid { batch: b, h, w }),
            _ => Err(bad()),
        }
    }
}

/// Batch size and grid height and width of a forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Grid {
    /// Batch size `B`.
    pub batch: usize,
    /// Height `H`.
    pub h: usize,
    /// Width `W`.
    pub w: usize,
}

impl Grid {
    /// `H * W`, checked.
    pub fn seqlen(&self) -> Result<usize, LayerError> {
        self.h
            .checked_mul(self.w)
            .ok_or(LayerError::Overflow { what: "h*w" })
    }

    /// `batch * channels * H * W`, checked (and within `isize`).
    pub fn elements(&self, channels: usize) -> Result<usize, LayerError> {
        let n = self
            .seqlen()?
            .checked_mul(self.batch)
            .and_then(|n| n.checked_mul(channels))
            .filter(|&n| isize::try_from(n).is_ok())
            .ok_or(LayerError::Overflow {
                what: "batch*channels*h*w",
            })?;
        Ok(n)
    }
}

// ------------------------------------------------------------------------------------------
// Weights

/// The weights of one SS2D module, owned, row-major, under VMamba's names (semantics.md
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
    dims: Ss2dDims,
    weights: Ss2dWeights,
    /// `conv2d.weight` transposed to `(k*k, d_inner)` for the channel-last conv.
    conv_taps: Vec<f32>,
}

/// The stages of a forward, as timed by [`StageTimes`].
pub const STAGES: [&str; 5] = ["gemm_in", "conv", "scan", "norm_gate", "gemm_out"];

/// Wall time of each stage of one forward.
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
        Ok(Ss2d {
            dims,
            weights,
            conv_taps,
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
    fn scan_weights(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.weights.x_proj_weight,
            dt_projs_weight: &self.weights.dt_projs_weight,
            dt_projs_bias: &self.weights.dt_projs_bias,
            a_logs: &self.weights.a_logs,
            ds: &self.weights.ds,
        }
    }

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
        let cf = d.channel_first;
        let (b, l) = (grid.batch, grid.seqlen()?);
        let (dm, di) = (d.d_model, d.d_inner);
        let bdl = b * di * l;
        let naive = backend == Backend::Reference;
        let mut scratch = crate::pool::take(0);

        // 1-2. in_proj, split, z activation.
        let t0 = Instant::now();
        let wx = &w.in_proj_weight[..di * dm];
        let mut x = crate::pool::take(bdl);
        ops::linear(
            naive,
            cf,
            wx,
            di,
            dm,
            input,
            b,
            l,
            &mut x,
            &mut scratch,
            par,
        );
        if let Some(bias) = &w.in_proj_bias {
            ops::add_channel_bias(cf, &bias[..di], b, l, &mut x, par);
        }
        let z = if d.forward.has_z() {
            let wz = &w.in_proj_weight[di * dm..];
            let mut z = crate::pool::take(bdl);
            ops::linear(
                naive,
                cf,
                wz,
                di,
                dm,
                input,
                b,
                l,
                &mut z,
                &mut scratch,
                par,
            );
            if let Some(bias) = &w.in_proj_bias {
                ops::add_channel_bias(cf, &bias[di..], b, l, &mut z, par);
            }
            if let Some(dbg) = debug.as_deref_mut() {
                dbg.in_proj_out = ops::concat_channels(cf, &x, &z, b, l, di);
            }
            if d.forward.z == ZBranch::Silu {
                ops::silu_inplace(naive, &mut z, par);
            }
            Some(z)
        } else {
            if let Some(dbg) = debug.as_deref_mut() {
                dbg.in_proj_out = x.clone();
            }
            None
        };
        t.gemm_in = t0.elapsed();

        // 3-5. depthwise conv (+ bias), SiLU.
        let t0 = Instant::now();
        let x = if let Some(cw) = &w.conv2d_weight {
            let mut xc = crate::pool::take(bdl);
            let conv = ops::ConvArgs {
                k: d.d_conv,
                weight: cw,
                taps: &self.conv_taps,
                bias: w.conv2d_bias.as_deref(),
                channels: di,
                h: grid.h,
                w: grid.w,
            };
            ops::dwconv(naive, cf, &conv, &x, b, &mut xc, par);
            crate::pool::give(x);
            if let Some(dbg) = debug.as_deref_mut() {
                dbg.conv2d_out = ops::to_channel_first(cf, &xc, b, l, di);
            }
            ops::silu_inplace(naive, &mut xc, par);
            xc
        } else {
            let mut x = x;
            ops::silu_inplace(naive, &mut x, par);
            x
        };
        t.conv = t0.elapsed();

        // 6-11. the scan.
        let t0 = Instant::now();
        let mut y = crate::pool::take(bdl);
        y.fill(0.0);
        let shape = d.scan_shape(grid);
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
            dbg.out_norm_in = y.clone();
        }
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
            dbg.out_norm_out = if d.forward.has_z() || d.forward.out_gelu {
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
                    &dbg.out_norm_in,
                    None,
                    b,
                    l,
                    &mut yn2,
                    par,
                );
                ops::untile(cf, &yn2, b, l, di)
            } else {
                ops::untile(cf, &yn, b, l, di)
            };
        }

        // 14. out_proj (+ bias).
        let t0 = Instant::now();
        let wo = &w.out_proj_weight;
        ops::linear_from_tiles(naive, cf, wo, dm, di, &yn, b, l, output, &mut scratch, par);
        if let Some(bias) = &w.out_proj_bias {
            ops::add_channel_bias(cf, bias, b, l, output, par);
        }
        crate::pool::give(yn);
        crate::pool::give(scratch);
        t.gemm_out = t0.elapsed();
        Ok(())
    }
}
