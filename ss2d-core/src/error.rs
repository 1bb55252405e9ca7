//! Typed errors. Every public entry point validates its input first and returns one of these;
//! nothing is written to any output buffer when an error is returned.

use core::fmt;

/// Everything that can be wrong with the input of an `ss2d-core` call.
///
/// Variants name the offending field or tensor and, where it applies, the expected and the
/// actual value. The type is `Copy` and allocation-free so it can cross `no_std` and FFI
/// boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A buffer has the wrong number of elements.
    Length {
        /// Tensor name, as in the reference signature (`u`, `delta`, `A`, ...).
        tensor: &'static str,
        /// Number of `f32` elements the shape requires.
        expected: usize,
        /// Number of `f32` elements given.
        actual: usize,
    },
    /// A size that must be non-zero is zero (`dstate`, `groups`, ...).
    Zero {
        /// Name of the field.
        field: &'static str,
    },
    /// `dstate` outside `1..=256` (the reference kernel's limit).
    Dstate {
        /// The value given.
        dstate: usize,
    },
    /// The number of B/C groups does not divide the channel count.
    Groups {
        /// `B` or `C`.
        tensor: &'static str,
        /// Channel count `D`.
        dim: usize,
        /// Groups given.
        groups: usize,
    },
    /// A size product overflows `usize` (or `isize` for strides).
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
    /// The caller's scratch buffer is too small; query `scratch_len`.
    Scratch {
        /// Elements needed.
        needed: usize,
        /// Elements given.
        actual: usize,
    },
    /// A walk does not visit exactly `seqlen` positions.
    WalkLength {
        /// `seqlen` of the shape.
        expected: usize,
        /// Positions the walk visits.
        actual: usize,
    },
    /// A walk steps outside `0..seqlen`.
    WalkBounds {
        /// `seqlen` of the shape.
        seqlen: usize,
    },
    /// A walk visits some position twice (and so misses another): its steps are not a
    /// permutation of `0..seqlen`.
    WalkRepeats {
        /// `seqlen` of the shape.
        seqlen: usize,
    },
    /// A work item index is not below the item count, or the count is zero.
    WorkItem {
        /// The index given.
        index: usize,
        /// The item count given.
        count: usize,
    },
    /// A dimension disagrees with another one (`what` names both).
    Mismatch {
        /// The relation that does not hold, e.g. `"x_proj_weight rows != dt_rank + 2*dstate"`.
        what: &'static str,
        /// The value the other tensors imply.
        expected: usize,
        /// The value given.
        actual: usize,
    },
    /// A value that must be finite or in range is not (configuration values, not data).
    Value {
        /// Name of the field.
        field: &'static str,
    },
    /// An unsupported option or combination.
    Unsupported {
        /// What is not supported.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Length {
                tensor,
                expected,
                actual,
            } => write!(
                f,
                "tensor `{tensor}` has {actual} elements, the shape needs {expected}"
            ),
            Error::Zero { field } => write!(f, "`{field}` must be at least 1"),
            Error::Dstate { dstate } => {
                write!(f, "d_state must be in 1..=256, got {dstate}")
            }
            Error::Groups {
                tensor,
                dim,
                groups,
            } => write!(
                f,
                "`{tensor}` has {groups} groups, which does not divide the {dim} channels"
            ),
            Error::Overflow { what } => write!(f, "size overflow computing {what}"),
            Error::Scratch { needed, actual } => write!(
                f,
                "scratch buffer has {actual} elements, {needed} are needed (see scratch_len)"
            ),
            Error::WalkLength { expected, actual } => write!(
                f,
                "walk visits {actual} positions, the sequence has {expected}"
            ),
            Error::WalkBounds { seqlen } => {
                write!(f, "walk leaves the sequence of {seqlen} positions")
            }
            Error::WalkRepeats { seqlen } => write!(
                f,
                "walk visits a position twice: not a permutation of the {seqlen} positions"
            ),
            Error::WorkItem { index, count } => {
                write!(f, "work item {index} of {count} does not exist")
            }
            Error::Mismatch {
                what,
                expected,
                actual,
            } => write!(f, "{what}: expected {expected}, got {actual}"),
            Error::Value { field } => write!(f, "`{field}` has an invalid value"),
            Error::Unsupported { what } => write!(f, "unsupported: {what}"),
        }
    }
}

impl core::error::Error for Error {}

/// Multiplies sizes, naming `what` on overflow.
pub(crate) fn mul(what: &'static str, a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::Overflow { what })
}

/// Checks a buffer length.
pub(crate) fn check_len(tensor: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Length {
            tensor,
            expected,
            actual,
        })
    }
}
