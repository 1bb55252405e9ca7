//! `ss2d._ss2d`: the native half of the `ss2d` Python package (PyO3, abi3).
//!
//! Every function takes C-contiguous `float32` NumPy arrays (the Python half, `ss2d/__init__.py`,
//! converts other inputs and documents how), checks their shapes, releases the GIL while the
//! kernel runs, and returns new NumPy arrays that own Rust buffers (no copy on the way out).
//! Errors are `ValueError` with the one-line message of `ss2d-core` / `ss2d-std` (or
//! `TypeError` from the argument extraction for a wrong dtype); no output is returned on error.
#![deny(missing_docs)]

use std::collections::HashMap;

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use ss2d_core::{BcLayout, Layout, ScanArgs, ScanShape, SimdLevel, Walk};
use ss2d_std::cross::{
    cross_merge_output_len, cross_scan_output_len, CrossDims, CrossOpts, ScanMode,
};
use ss2d_std::layer::{Backend, DtRank, ForwardOptions, Ss2d, Ss2dConfig};
use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

type In<'py> = PyReadonlyArrayDyn<'py, f32>;
type Out<'py> = Bound<'py, PyArrayDyn<f32>>;

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn fmt_shape(s: &[usize]) -> String {
    match s {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            s.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The data of a C-contiguous array (the Python side makes it so; anything else is refused).
fn data<'a>(name: &str, a: &'a In<'_>) -> PyResult<&'a [f32]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!(
            "tensor `{name}` is not C-contiguous (pass a contiguous array)"
        ))
    })
}

fn shape_is(name: &str, a: &In<'_>, want: &[usize]) -> PyResult<()> {
    if a.shape() == want {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "tensor `{name}` has shape {}, expected {}",
            fmt_shape(a.shape()),
            fmt_shape(want)
        )))
    }
}

fn rank<const R: usize>(name: &str, a: &In<'_>, what: &str) -> PyResult<[usize; R]> {
    a.shape().try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "tensor `{name}` has shape {}, expected {what}",
            fmt_shape(a.shape())
        ))
    })
}

fn opt_data<'a>(name: &str, a: &'a Option<In<'_>>, want: &[usize]) -> PyResult<Option<&'a [f32]>> {
    match a {
        None => Ok(None),
        Some(a) => {
            shape_is(name, a, want)?;
            data(name, a).map(Some)
        }
    }
}

/// A new array of `shape` owning `v` (no copy).
fn array<'py>(py: Python<'py>, shape: &[usize], v: Vec<f32>) -> PyResult<Out<'py>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), v).map_err(value_err)?;
    Ok(a.into_pyarray(py))
}

/// Zeroed output storage; an impossible size is a `ValueError`, not an abort.
fn zeros(what: &str, n: usize) -> PyResult<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        PyValueError::new_err(format!("`{what}` of {n} elements does not fit in memory"))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

fn par(threads: usize) -> Parallelism<'static> {
    Parallelism::Threads(threads)
}

/// The B/C layout of a 2-D `(dim, N)`, 3-D `(batch, N, L)` or 4-D `(batch, G, N, L)` tensor.
fn bc_layout(
    name: &str,
    t: &In<'_>,
    batch: usize,
    dim: usize,
    n: usize,
    l: usize,
) -> PyResult<BcLayout> {
    match *t.shape() {
        [_, _] => shape_is(name, t, &[dim, n]).map(|()| BcLayout::Constant),
        [_, _, _] => shape_is(name, t, &[batch, n, l]).map(|()| BcLayout::Grouped(1)),
        [_, g, _, _] => shape_is(name, t, &[batch, g, n, l]).map(|()| BcLayout::Grouped(g)),
        _ => Err(PyValueError::new_err(format!(
            "tensor `{name}` has shape {}, expected (dim, N), (batch, N, L) or (batch, G, N, L)",
            fmt_shape(t.shape())
        ))),
    }
}

/// mamba's `selective_scan_fn` (channel-first `(batch, dim, L)`). Returns `(out, last_state)`,
/// `last_state` `None` unless asked for.
#[pyfunction]
#[pyo3(signature = (u, delta, a, b, c, d=None, z=None, delta_bias=None, delta_softplus=false,
    return_last_state=false, initial_state=None, threads=1, out=None))]
#[allow(clippy::too_many_arguments)]
fn selective_scan<'py>(
    py: Python<'py>,
    u: In<'py>,
    delta: In<'py>,
    a: In<'py>,
    b: In<'py>,
    c: In<'py>,
    d: Option<In<'py>>,
    z: Option<In<'py>>,
    delta_bias: Option<In<'py>>,
    delta_softplus: bool,
    return_last_state: bool,
    initial_state: Option<In<'py>>,
    threads: usize,
    out: Option<Out<'py>>,
) -> PyResult<(Out<'py>, Option<Out<'py>>)> {
    let [batch, dim, l] = rank::<3>("u", &u, "(batch, dim, L)")?;
    shape_is("delta", &delta, &[batch, dim, l])?;
    let [_, n] = rank::<2>("A", &a, "(dim, N)")?;
    shape_is("A", &a, &[dim, n])?;
    let shape = ScanShape {
        batch,
        dim,
        seqlen: l,
        dstate: n,
        b: bc_layout("B", &b, batch, dim, n, l)?,
        c: bc_layout("C", &c, batch, dim, n, l)?,
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: data("u", &u)?,
        delta: data("delta", &delta)?,
        a: data("A", &a)?,
        b: data("B", &b)?,
        c: data("C", &c)?,
        d_skip: opt_data("D", &d, &[dim])?,
        z: opt_data("z", &z, &[batch, dim, l])?,
        delta_bias: opt_data("delta_bias", &delta_bias, &[dim])?,
        delta_softplus,
        initial_state: opt_data("initial_state", &initial_state, &[batch, dim, n])?,
    };
    // `out=`: the caller's C-contiguous float32 array of u's shape, written in place (a reused
    // buffer, as the Rust API's callers do); else a new array.
    let mut given = match &out {
        None => None,
        Some(o) => {
            if o.shape() != u.shape() {
                return Err(PyValueError::new_err(format!(
                    "`out` has shape {}, expected {}",
                    fmt_shape(o.shape()),
                    fmt_shape(u.shape())
                )));
            }
            let rw = o.try_readwrite().map_err(|_| {
                PyValueError::new_err("`out` is not writeable or aliases an input array")
            })?;
            Some(rw)
        }
    };
    let mut fresh = if given.is_none() {
        zeros("out", u.len())?
    } else {
        Vec::new()
    };
    let out_slice: &mut [f32] = match &mut given {
        Some(rw) => rw
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("`out` is not C-contiguous"))?,
        None => &mut fresh,
    };
    let state_shape = [batch, dim, n];
    let mut state = if return_last_state {
        Some(zeros("last_state", state_shape.iter().product())?)
    } else {
        None
    };
    shape.validate().map_err(value_err)?;
    let walk = Walk::forward(l);
    py.detach(|| {
        ss2d_std::selective_scan(
            &shape,
            &walk,
            &args,
            out_slice,
            state.as_deref_mut(),
            par(threads),
        )
    })
    .map_err(value_err)?;
    drop(given);
    let out = match out {
        Some(o) => o,
        None => array(py, u.shape(), fresh)?,
    };
    let state = state.map(|s| array(py, &state_shape, s)).transpose()?;
    Ok((out, state))
}

fn cross_opts(in_cf: bool, out_cf: bool, one_by_one: bool, scans: i64) -> PyResult<CrossOpts> {
    Ok(CrossOpts {
        mode: ScanMode::from_scans(scans).map_err(value_err)?,
        in_channel_first: in_cf,
        out_channel_first: out_cf,
        one_by_one,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cross {
    Scan,
    Merge,
}

/// The cross-scan or cross-merge of `t` (both directions share the size inference and the
/// output shapes).
fn cross<'py>(
    py: Python<'py>,
    dir: Cross,
    t: In<'py>,
    opts: CrossOpts,
    threads: usize,
) -> PyResult<Out<'py>> {
    let (name, out_name) = match dir {
        Cross::Scan => ("x", "xs"),
        Cross::Merge => ("ys", "y"),
    };
    // The input is the 2D side for the scan (four slices one-by-one) and the sequence side,
    // always four directions, for the merge.
    let four = dir == Cross::Merge || opts.one_by_one;
    let cf = match dir {
        Cross::Scan => opts.in_channel_first,
        Cross::Merge => opts.out_channel_first,
    };
    let (batch, channels, h, w) = match (four, cf, t.shape()) {
        (false, true, &[b, c, h, w]) => (b, c, h, w),
        (false, false, &[b, h, w, c]) => (b, c, h, w),
        (true, true, &[b, 4, c, h, w]) => (b, c, h, w),
        (true, false, &[b, h, w, 4, c]) => (b, c, h, w),
        _ => {
            let want = match (four, cf) {
                (false, true) => "(B, C, H, W)",
                (false, false) => "(B, H, W, C)",
                (true, true) => "(B, 4, C, H, W)",
                (true, false) => "(B, H, W, 4, C)",
            };
            return Err(PyValueError::new_err(format!(
                "tensor `{name}` has shape {}, expected {want}",
                fmt_shape(t.shape())
            )));
        }
    };
    let dims = CrossDims {
        batch,
        channels,
        h,
        w,
    };
    let n = match dir {
        Cross::Scan => cross_scan_output_len(dims, opts),
        Cross::Merge => cross_merge_output_len(dims, opts),
    }
    .map_err(value_err)?;
    let l = dims.seqlen().map_err(value_err)?;
    let td = data(name, &t)?;
    let mut out = zeros(out_name, n)?;
    py.detach(|| match dir {
        Cross::Scan => ss2d_std::cross::cross_scan(td, dims, opts, &mut out, par(threads)),
        Cross::Merge => ss2d_std::cross::cross_merge(td, dims, opts, &mut out, par(threads)),
    })
    .map_err(value_err)?;
    // The scan writes the sequence side, the merge the 2D side (four slices one-by-one).
    let (seq, cf) = match dir {
        Cross::Scan => (true, opts.out_channel_first),
        Cross::Merge => (opts.one_by_one, opts.in_channel_first),
    };
    let shape: Vec<usize> = match (seq, cf) {
        (true, true) => vec![batch, 4, channels, l],
        (true, false) => vec![batch, l, 4, channels],
        (false, true) => vec![batch, channels, l],
        (false, false) => vec![batch, l, channels],
    };
    array(py, &shape, out)
}

/// VMamba's `cross_scan_fn`: `x` `(B, C, H, W)` / `(B, H, W, C)` (one-by-one:
/// `(B, 4, C, H, W)` / `(B, H, W, 4, C)`) to `xs` `(B, 4, C, L)` / `(B, L, 4, C)`.
#[pyfunction]
#[pyo3(signature = (x, in_channel_first=true, out_channel_first=true, one_by_one=false, scans=0, threads=1))]
fn cross_scan<'py>(
    py: Python<'py>,
    x: In<'py>,
    in_channel_first: bool,
    out_channel_first: bool,
    one_by_one: bool,
    scans: i64,
    threads: usize,
) -> PyResult<Out<'py>> {
    let opts = cross_opts(in_channel_first, out_channel_first, one_by_one, scans)?;
    cross(py, Cross::Scan, x, opts, threads)
}

/// VMamba's `cross_merge_fn`: `ys` `(B, 4, C, H, W)` / `(B, H, W, 4, C)` to `y` `(B, C, L)` /
/// `(B, L, C)` (one-by-one: `(B, 4, C, L)` / `(B, L, 4, C)`).
#[pyfunction]
#[pyo3(signature = (ys, in_channel_first=true, out_channel_first=true, one_by_one=false, scans=0, threads=1))]
fn cross_merge<'py>(
    py: Python<'py>,
    ys: In<'py>,
    in_channel_first: bool,
    out_channel_first: bool,
    one_by_one: bool,
    scans: i64,
    threads: usize,
) -> PyResult<Out<'py>> {
    let opts = cross_opts(in_channel_first, out_channel_first, one_by_one, scans)?;
    cross(py, Cross::Merge, ys, opts, threads)
}

/// The SS2D scan (VMamba's `forward_corev2` steps 6-11: cross-scan, x_proj, dt_proj, the
/// selective scan of the 4 directions, cross-merge) on `x` `(B, D, H, W)` / `(B, H, W, D)`,
/// fused (default) or unfused; the result has the layout of `x`.
#[pyfunction]
#[pyo3(signature = (x, x_proj_weight, dt_projs_weight, dt_projs_bias, a_logs, ds,
    scans=0, channel_first=true, fused=true, threads=1))]
#[allow(clippy::too_many_arguments)]
fn ss2d_scan<'py>(
    py: Python<'py>,
    x: In<'py>,
    x_proj_weight: In<'py>,
    dt_projs_weight: In<'py>,
    dt_projs_bias: In<'py>,
    a_logs: In<'py>,
    ds: In<'py>,
    scans: i64,
    channel_first: bool,
    fused: bool,
    threads: usize,
) -> PyResult<Out<'py>> {
    let what = if channel_first {
        "(B, D, H, W)"
    } else {
        "(B, H, W, D)"
    };
    let [b0, b1, b2, b3] = rank::<4>("x", &x, what)?;
    let (batch, dim, h, w) = if channel_first {
        (b0, b1, b2, b3)
    } else {
        (b0, b3, b1, b2)
    };
    let [_, dstate] = rank::<2>("A_logs", &a_logs, "(4*D, N)")?;
    let [_, _, dt_rank] = rank::<3>("dt_projs_weight", &dt_projs_weight, "(4, D, R)")?;
    let kd = 4 * dim;
    shape_is(
        "x_proj_weight",
        &x_proj_weight,
        &[4, dt_rank + 2 * dstate, dim],
    )?;
    shape_is("dt_projs_weight", &dt_projs_weight, &[4, dim, dt_rank])?;
    shape_is("dt_projs_bias", &dt_projs_bias, &[4, dim])?;
    shape_is("A_logs", &a_logs, &[kd, dstate])?;
    shape_is("Ds", &ds, &[kd])?;
    let shape = Ss2dScanShape {
        batch,
        dim,
        h,
        w,
        dstate,
        dt_rank,
        mode: ScanMode::from_scans(scans).map_err(value_err)?,
        channel_first,
    };
    let weights = Ss2dScanWeights {
        x_proj_weight: data("x_proj_weight", &x_proj_weight)?,
        dt_projs_weight: data("dt_projs_weight", &dt_projs_weight)?,
        dt_projs_bias: data("dt_projs_bias", &dt_projs_bias)?,
        a_logs: data("A_logs", &a_logs)?,
        ds: data("Ds", &ds)?,
    };
    let sizes = shape.validate(&weights).map_err(value_err)?;
    let xd = data("x", &x)?;
    let mut out = zeros("y", sizes.x_len)?;
    py.detach(|| {
        if fused {
            ss2d_std::fused::ss2d_scan(&shape, &weights, xd, &mut out, par(threads))
        } else {
            ss2d_std::unfused::ss2d_scan_unfused(&shape, &weights, xd, &mut out, par(threads))
        }
    })
    .map_err(value_err)?;
    array(py, x.shape(), out)
}

/// A loaded VMamba SS2D module (`ss2d_std::Ss2d`).
#[pyclass(frozen, name = "Layer", module = "ss2d._ss2d")]
struct Layer {
    inner: Ss2d,
}

#[pymethods]
impl Layer {
    /// Loads the module's tensors (`tensors`: name -> float32 array, full names =
    /// `prefix` + VMamba name) under a complete configuration (`dt_rank` `None` = auto).
    #[new]
    #[pyo3(signature = (tensors, prefix, d_model, d_state, ssm_ratio, dt_rank, d_conv,
        conv_bias, forward_type, channel_first))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        tensors: HashMap<String, In<'_>>,
        prefix: &str,
        d_model: usize,
        d_state: usize,
        ssm_ratio: f64,
        dt_rank: Option<usize>,
        d_conv: usize,
        conv_bias: bool,
        forward_type: String,
        channel_first: bool,
    ) -> PyResult<Layer> {
        let config = Ss2dConfig {
            d_model,
            d_state,
            ssm_ratio,
            dt_rank: dt_rank.map_or(DtRank::Auto, DtRank::Fixed),
            d_conv,
            conv_bias,
            forward_type,
            channel_first,
        };
        let mut views = HashMap::new();
        for (name, t) in &tensors {
            views.insert(name.as_str(), (t.shape(), data(name, t)?));
        }
        let lookup = |name: &str| views.get(name).copied();
        let inner = Ss2d::from_tensors(&config, prefix, &lookup).map_err(value_err)?;
        Ok(Layer { inner })
    }

    /// The resolved configuration.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = self.inner.dims();
        let out = PyDict::new(py);
        out.set_item("d_model", d.d_model)?;
        out.set_item("d_inner", d.d_inner)?;
        out.set_item("d_state", d.d_state)?;
        out.set_item("dt_rank", d.dt_rank)?;
        out.set_item("d_conv", d.d_conv)?;
        out.set_item("conv_bias", d.conv_bias)?;
        out.set_item("forward_type", d.forward.to_string())?;
        out.set_item("channel_first", d.channel_first)?;
        out.set_item("params", self.inner.param_count())?;
        Ok(out)
    }

    /// The forward on `x` (`(B, d_model, H, W)` or `(B, H, W, d_model)` per the layout);
    /// `backend`: `fast`, `unfused` or `reference`.
    #[pyo3(signature = (x, threads=1, backend="fast"))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: In<'py>,
        threads: usize,
        backend: &str,
    ) -> PyResult<Out<'py>> {
        let backend = match backend {
            "fast" => Backend::Fast,
            "unfused" => Backend::Unfused,
            "reference" => Backend::Reference,
            other => {
                return Err(PyValueError::new_err(format!(
                    "backend must be `fast`, `unfused` or `reference`, got `{other}`"
                )))
            }
        };
        let grid = self.inner.dims().grid_of(x.shape()).map_err(value_err)?;
        let xd = data("input", &x)?;
        let mut out = zeros("output", xd.len())?;
        py.detach(|| {
            self.inner.forward_with(
                xd,
                grid,
                &mut out,
                ForwardOptions {
                    backend,
                    par: par(threads),
                    ..ForwardOptions::default()
                },
            )
        })
        .map_err(value_err)?;
        array(py, x.shape(), out)
    }
}

/// Reads a safetensors file: `(metadata, {name: float32 array})` (the CLI's reader: `F32`
/// tensors only, every problem a one-line message naming the file and tensor).
#[pyfunction]
fn load_safetensors<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    let file = py
        .detach(|| ss2d_cli::io::TensorFile::open(&path))
        .map_err(|e| match e {
            ss2d_cli::io::IoError::Read { .. } => PyOSError::new_err(e.to_string()),
            _ => value_err(e),
        })?;
    let meta = PyDict::new(py);
    for (k, v) in file.metadata() {
        meta.set_item(k, v)?;
    }
    let tensors = PyDict::new(py);
    let names: Vec<String> = file.names().map(str::to_string).collect();
    for name in names {
        let t = file.tensor(&name).map_err(value_err)?;
        tensors.set_item(&name, array(py, t.shape(), t.data().to_vec())?)?;
    }
    Ok((meta, tensors))
}

/// The SIMD level the kernels run at (`x86-64`, `x86-64-v3`, `x86-64-v4`, `neon`): the best
/// level of the CPU, chosen at run time, unless `SS2D_ISA` pins another (an invalid `SS2D_ISA`
/// raises `ValueError` here).
#[pyfunction]
fn simd_level() -> PyResult<&'static str> {
    ss2d_std::cpu::level_from_env()
        .map(SimdLevel::name)
        .map_err(|m| PyValueError::new_err(format!("SS2D_ISA: {m}")))
}

/// Threads a call uses by default: every available core.
#[pyfunction]
fn default_threads() -> usize {
    ss2d_cli::scan::default_threads()
}

/// The native module.
#[pymodule(name = "_ss2d")]
fn init_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Apply SS2D_ISA once, at import: an invalid value fails the import with its message.
    ss2d_std::cpu::level_from_env().map_err(|m| PyValueError::new_err(format!("SS2D_ISA: {m}")))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TENSOR_NAMES", ss2d_cli::layer::TENSOR_NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(selective_scan, m)?)?;
    m.add_function(wrap_pyfunction!(cross_scan, m)?)?;
    m.add_function(wrap_pyfunction!(cross_merge, m)?)?;
    m.add_function(wrap_pyfunction!(ss2d_scan, m)?)?;
    m.add_function(wrap_pyfunction!(load_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    m.add_class::<Layer>()?;
    Ok(())
}
