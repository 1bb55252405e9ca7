//! The command's error type: every failure is one of these, displayed as one line.

use std::fmt;
use std::path::PathBuf;

use crate::io::IoError;

/// Why a command failed. `Display` is a single line (the binary prefixes `ss2d: error: `).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a safetensors file.
    Io(IoError),
    /// A tensor of the input does not have the shape the operation needs.
    Shape {
        /// The input file.
        path: PathBuf,
        /// What is wrong, naming the tensor, the expected and the actual shape.
        message: String,
    },
    /// The core validation rejected the input (`context` names the file or the bench shape).
    Core {
        /// The input file or bench shape.
        context: String,
        /// The core error (names the field or tensor, expected and actual values).
        source: ss2d_core::Error,
    },
    /// A buffer could not be allocated.
    Alloc {
        /// What the buffer was for.
        what: String,
        /// Elements requested.
        elements: usize,
    },
    /// A command-line value is invalid or an option is not available.
    Usage(String),
    /// The binary was built for a SIMD level this CPU does not offer.
    Isa {
        /// Level compiled in.
        compiled: &'static str,
        /// Level the CPU offers.
        detected: &'static str,
    },
    /// The kernel and the reference disagree beyond tolerance (bench self-check).
    Check(String),
    /// Writing the report to stdout failed.
    Stdout(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Shape { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Core { context, source } => write!(f, "{context}: {source}"),
            Error::Alloc { what, elements } => write!(
                f,
                "cannot allocate {what} ({elements} f32 elements, {} bytes)",
                elements.saturating_mul(4)
            ),
            Error::Usage(m) => write!(f, "{m}"),
            Error::Isa { compiled, detected } => write!(
                f,
                "this binary was built for {compiled} but the CPU only supports {detected}; \
                 rebuild with RUSTFLAGS=\"-C target-cpu=native\" (or a lower level)"
            ),
            Error::Check(m) => write!(f, "{m}"),
            Error::Stdout(e) => write!(f, "cannot write to stdout: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<IoError> for Error {
    fn from(e: IoError) -> Self {
        Error::Io(e)
    }
}

/// A zero-filled `Vec<f32>` of `n` elements, or [`Error::Alloc`] when it cannot be allocated.
pub fn zeros(what: &str, n: usize) -> Result<Vec<f32>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::Alloc {
        what: what.to_string(),
        elements: n,
    })?;
    v.resize(n, 0.0);
    Ok(v)
}
