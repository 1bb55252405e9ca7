//! The layer's errors.

use super::*;

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
