//! The layer's configuration: forward types (VMamba's `forward_type` strings), the
//! constructor arguments and the sizes they resolve to, the input grid.

use super::*;

/// The core of a forward type: which `forward_core` upstream runs (`docs/semantics.md` section 2).
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

/// The constructor arguments of VMamba's `SS2D` that change the forward (`docs/semantics.md`
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
