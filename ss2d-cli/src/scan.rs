//! `ss2d scan IN OUT`: mamba's `selective_scan_fn` on a safetensors file.
//!
//! Shapes are inferred from `u` (B, D, L) and the state size N that `A` (D, N), `B` and `C`
//! agree on; `B`/`C` layouts from their rank: 2 = (D, N) constant, 3 = (B, N, L) (one group),
//! 4 = (B, G, N, L) grouped. Every other tensor is checked against those shapes here (naming
//! the tensor that disagrees, expected and actual shape), then the core validation runs. An
//! optional `initial_state` (B, D, N) is the state before the first step. Tensors the scan does
//! not read (e.g. the expected outputs of a golden file) are allowed and named in one note on
//! stderr. Flags given on the command line win over `__metadata__`.

use std::collections::BTreeMap;
use std::path::Path;

use ss2d_core::{BcLayout, Layout, ScanArgs, ScanShape, SimdLevel, Walk};

use crate::error::{zeros, Error};
use crate::io::{fmt_shape, write_tensors, OutTensor, Tensor, TensorFile};

/// Which implementation computes the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The SIMD kernel on `threads` threads (bitwise identical for any count).
    Kernel {
        /// Threads (1 = the calling thread).
        threads: usize,
    },
    /// The scalar `f32` reference (`ss2d_core::reference::selective_scan::<f32>`), one thread.
    Reference,
}

impl Backend {
    /// Name written to the output's metadata.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Kernel { .. } => "kernel",
            Backend::Reference => "reference",
        }
    }
}

/// Runs one scan with the chosen backend. Same contract as the core entry points: validates
/// everything first and writes nothing on error.
pub fn execute(
    backend: Backend,
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
) -> Result<(), ss2d_core::Error> {
    match backend {
        Backend::Kernel { threads } => kernel_scan(shape, walk, args, out, final_state, threads),
        Backend::Reference => {
            ss2d_core::reference::selective_scan::<f32>(shape, walk, args, out, final_state)
        }
    }
}

/// The kernel on `threads` threads: `ss2d_std::selective_scan` (bitwise identical for every
/// thread count; 1 = the calling thread).
pub fn kernel_scan(
    shape: &ScanShape,
    walk: &Walk,
    args: &ScanArgs<'_>,
    out: &mut [f32],
    final_state: Option<&mut [f32]>,
    threads: usize,
) -> Result<(), ss2d_core::Error> {
    ss2d_std::selective_scan(
        shape,
        walk,
        args,
        out,
        final_state,
        ss2d_std::Parallelism::Threads(threads),
    )
}

/// Options of one scan, as given on the command line (`None` = take the file's metadata).
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    /// Kernel or reference.
    pub backend: Backend,
    /// `--delta-softplus`.
    pub delta_softplus: Option<bool>,
    /// `--return-last-state`.
    pub return_last_state: Option<bool>,
}

/// The result of a scan: `out` (B, D, L) and, when asked, `last_state` (B, D, N).
#[derive(Clone, Debug)]
pub struct ScanOutput {
    /// The shape that ran.
    pub shape: ScanShape,
    /// Whether softplus was applied.
    pub delta_softplus: bool,
    /// `out`, (B, D, L).
    pub out: Vec<f32>,
    /// `last_state`, (B, D, N), when asked.
    pub last_state: Option<Vec<f32>>,
    /// The note naming the input's tensors the scan did not read (printed on stderr once the
    /// output is written, so that a failure stays one error line).
    pub note: Option<String>,
}

/// The input tensors of a scan, borrowed from a [`TensorFile`].
struct Inputs<'f> {
    u: Tensor<'f>,
    delta: Tensor<'f>,
    a: Tensor<'f>,
    b: Tensor<'f>,
    c: Tensor<'f>,
    d: Option<Tensor<'f>>,
    z: Option<Tensor<'f>>,
    bias: Option<Tensor<'f>>,
    init: Option<Tensor<'f>>,
}

/// The tensors `ss2d scan` reads.
pub const SCAN_TENSORS: [&str; 9] = [
    "u",
    "delta",
    "A",
    "B",
    "C",
    "D",
    "z",
    "delta_bias",
    "initial_state",
];

/// The one stderr note naming the tensors of `file` that `used` does not list, if any.
pub fn unused_note(file: &TensorFile, used: &[&str], command: &str) -> Option<String> {
    let extra: Vec<String> = file
        .names()
        .filter(|n| !used.contains(n))
        .map(|n| format!("`{n}`"))
        .collect();
    (!extra.is_empty()).then(|| {
        format!(
            "note: {}: `ss2d {command}` does not read {} (it reads {})",
            file.path().display(),
            extra.join(", "),
            used.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The state size `N` of `A` (D, N) or of `B`/`C` by rank, when its rank allows one.
fn state_size(t: &Tensor<'_>) -> Option<usize> {
    match *t.shape() {
        [_, n] | [_, n, _] | [_, _, n, _] => Some(n),
        _ => None,
    }
}

/// The state size N the tensors `A`, `B`, `C` agree on: `A`'s when at least one of `B`/`C`
/// agrees with it (or neither tells), else the value `B` and `C` share, which blames `A`.
fn agreed_state_size(file: &TensorFile, inp: &Inputs<'_>) -> Result<usize, Error> {
    let na = state_size(&inp.a).unwrap_or(0);
    let (nb, nc) = (state_size(&inp.b), state_size(&inp.c));
    match (nb, nc) {
        (Some(b), Some(c)) if b == c && b != na => {
            let dim = inp.a.shape().first().copied().unwrap_or(0);
            Err(Error::Shape {
                path: file.path().to_path_buf(),
                message: format!(
                    "tensor `A` has shape {}, expected {} (N = {b} from `B` {} and `C` {})",
                    fmt_shape(inp.a.shape()),
                    fmt_shape(&[dim, b]),
                    fmt_shape(inp.b.shape()),
                    fmt_shape(inp.c.shape())
                ),
            })
        }
        _ => Ok(na),
    }
}

/// Checks that `t` has exactly shape `want`; `why` says where `want` comes from.
fn expect_shape(file: &TensorFile, t: &Tensor<'_>, want: &[usize], why: &str) -> Result<(), Error> {
    if t.shape() == want {
        Ok(())
    } else {
        Err(Error::Shape {
            path: file.path().to_path_buf(),
            message: format!(
                "tensor `{}` has shape {}, expected {} ({why})",
                t.name(),
                fmt_shape(t.shape()),
                fmt_shape(want)
            ),
        })
    }
}

/// Infers the layout of `B` or `C` from its rank and checks its other dimensions.
fn bc_layout(
    file: &TensorFile,
    t: &Tensor<'_>,
    (bsz, dim, len, n): (usize, usize, usize, usize),
) -> Result<BcLayout, Error> {
    match *t.shape() {
        [_, _] => {
            expect_shape(file, t, &[dim, n], "constant (D, N) from `u` and `A`")?;
            Ok(BcLayout::Constant)
        }
        [_, _, _] => {
            expect_shape(file, t, &[bsz, n, len], "(B, N, L) from `u` and `A`")?;
            Ok(BcLayout::Grouped(1))
        }
        [_, g, _, _] => {
            if g == 0 {
                return Err(Error::Shape {
                    path: file.path().to_path_buf(),
                    message: format!(
                        "tensor `{}` has shape {}: zero groups",
                        t.name(),
                        fmt_shape(t.shape())
                    ),
                });
            }
            expect_shape(file, t, &[bsz, g, n, len], "(B, G, N, L) from `u` and `A`")?;
            Ok(BcLayout::Grouped(g))
        }
        // Ranks are checked on load.
        _ => Err(Error::Shape {
            path: file.path().to_path_buf(),
            message: format!("tensor `{}` has an unsupported rank", t.name()),
        }),
    }
}

/// Runs a scan on the tensors of `file` (without writing anything).
pub fn scan_file(file: &TensorFile, opts: &ScanOptions) -> Result<ScanOutput, Error> {
    let inputs = Inputs {
        u: file.tensor_rank("u", &[3])?,
        delta: file.tensor_rank("delta", &[3])?,
        a: file.tensor_rank("A", &[2])?,
        b: file.tensor_rank("B", &[2, 3, 4])?,
        c: file.tensor_rank("C", &[2, 3, 4])?,
        d: file.optional_rank("D", &[1])?,
        z: file.optional_rank("z", &[3])?,
        bias: file.optional_rank("delta_bias", &[1])?,
        init: file.optional_rank("initial_state", &[3])?,
    };
    let delta_softplus = match opts.delta_softplus {
        Some(v) => v,
        None => file.meta_bool("delta_softplus")?.unwrap_or(false),
    };
    let return_last_state = match opts.return_last_state {
        Some(v) => v,
        None => file.meta_bool("return_last_state")?.unwrap_or(false),
    };

    let (bsz, dim, len) = match *inputs.u.shape() {
        [b, d, l] => (b, d, l),
        _ => unreachable_rank(file, "u")?,
    };
    let n = agreed_state_size(file, &inputs)?;
    let u_shape = inputs.u.shape();
    expect_shape(file, &inputs.delta, u_shape, "the shape of `u`")?;
    expect_shape(file, &inputs.a, &[dim, n], "(D, N): D = channels of `u`")?;
    if let Some(init) = &inputs.init {
        expect_shape(
            file,
            init,
            &[bsz, dim, n],
            "(B, D, N): B and D from `u`, N from `A`",
        )?;
    }
    if let Some(z) = &inputs.z {
        expect_shape(file, z, u_shape, "the shape of `u`")?;
    }
    if let Some(d) = &inputs.d {
        expect_shape(file, d, &[dim], "one per channel of `u`")?;
    }
    if let Some(bias) = &inputs.bias {
        expect_shape(file, bias, &[dim], "one per channel of `u`")?;
    }
    let dims = (bsz, dim, len, n);
    let shape = ScanShape {
        batch: bsz,
        dim,
        seqlen: len,
        dstate: n,
        b: bc_layout(file, &inputs.b, dims)?,
        c: bc_layout(file, &inputs.c, dims)?,
        layout: Layout::ChannelFirst,
    };
    let core_err = |source| Error::Core {
        context: file.path().display().to_string(),
        source,
    };
    shape.validate().map_err(core_err)?;
    let args = ScanArgs {
        u: inputs.u.data(),
        delta: inputs.delta.data(),
        a: inputs.a.data(),
        b: inputs.b.data(),
        c: inputs.c.data(),
        d_skip: inputs.d.as_ref().map(Tensor::data),
        z: inputs.z.as_ref().map(Tensor::data),
        delta_bias: inputs.bias.as_ref().map(Tensor::data),
        delta_softplus,
        initial_state: inputs.init.as_ref().map(Tensor::data),
    };
    let mut out = zeros("`out`", inputs.u.data().len())?;
    let mut last_state = if return_last_state {
        // validate() has checked that batch*dim*dstate fits.
        Some(zeros("`last_state`", bsz * dim * n)?)
    } else {
        None
    };
    execute(
        opts.backend,
        &shape,
        &Walk::forward(len),
        &args,
        &mut out,
        last_state.as_deref_mut(),
    )
    .map_err(core_err)?;
    Ok(ScanOutput {
        shape,
        delta_softplus,
        out,
        last_state,
        note: unused_note(file, &SCAN_TENSORS, "scan"),
    })
}

fn unreachable_rank<T>(file: &TensorFile, name: &str) -> Result<T, Error> {
    Err(Error::Shape {
        path: file.path().to_path_buf(),
        message: format!("tensor `{name}` has an unsupported rank"),
    })
}

/// Writes a scan's result: `out` and, when present, `last_state`, with provenance metadata.
pub fn write_output(path: &Path, r: &ScanOutput, backend: Backend) -> Result<(), Error> {
    let s = &r.shape;
    let out_shape = [s.batch, s.dim, s.seqlen];
    let state_shape = [s.batch, s.dim, s.dstate];
    let mut tensors = vec![OutTensor {
        name: "out",
        shape: &out_shape,
        data: &r.out,
    }];
    if let Some(st) = &r.last_state {
        tensors.push(OutTensor {
            name: "last_state",
            shape: &state_shape,
            data: st,
        });
    }
    let mut meta = BTreeMap::new();
    meta.insert("op".to_string(), "scan".to_string());
    meta.insert("backend".to_string(), backend.name().to_string());
    meta.insert("isa".to_string(), SimdLevel::current().name().to_string());
    meta.insert("delta_softplus".to_string(), r.delta_softplus.to_string());
    meta.insert(
        "return_last_state".to_string(),
        r.last_state.is_some().to_string(),
    );
    meta.insert(
        "producer".to_string(),
        concat!("ss2d ", env!("CARGO_PKG_VERSION")).to_string(),
    );
    write_tensors(path, &tensors, &meta)?;
    Ok(())
}

/// Default kernel threads for op commands: every CPU this process may run on (the library
/// pool's cap, `ss2d_std::max_threads`).
pub fn default_threads() -> usize {
    ss2d_std::max_threads()
}

/// `ss2d scan IN OUT ...`.
pub fn command(a: &crate::cli::ScanArgs) -> Result<(), Error> {
    let backend = if a.reference {
        Backend::Reference
    } else {
        Backend::Kernel {
            threads: a.threads.map_or_else(default_threads, |t| t as usize),
        }
    };
    let opts = ScanOptions {
        backend,
        delta_softplus: a.delta_softplus,
        return_last_state: a.return_last_state,
    };
    let file = TensorFile::open(&a.input)?;
    let result = scan_file(&file, &opts)?;
    drop(file);
    write_output(&a.output, &result, backend)?;
    if let Some(note) = &result.note {
        eprintln!("{note}");
    }
    Ok(())
}
