//! The SS2D layer behind an opaque handle.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ss2d_std::layer::TensorRef;
use ss2d_std::{DtRank, Ss2d, Ss2dConfig};

use crate::exec::{read_exec, ss2d_exec};
use crate::tensor::{self as t, check_disjoint, input_value, ss2d_const_tensor, ss2d_tensor};
use crate::{arg, flag, guard, ss2d_status, Fail, Res};

/// An SS2D layer (VMamba's `SS2D` module with its weights); opaque. Create with
/// `ss2d_layer_create`, release with `ss2d_layer_free`. A layer is immutable after creation:
/// any number of threads may call `ss2d_layer_forward` on it at once.
pub struct ss2d_layer {
    inner: Ss2d,
}

/// A tensor with its state_dict name (NUL-terminated UTF-8), e.g. `"in_proj.weight"`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_named_tensor {
    /// The name, including any prefix given to `ss2d_layer_create`.
    pub name: *const c_char,
    /// The tensor, in the shape of the checkpoint (any strides).
    pub tensor: ss2d_const_tensor,
}

/// The constructor arguments of VMamba's `SS2D` that change the forward.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_layer_config {
    /// Channels of the input and output.
    pub d_model: usize,
    /// State size `N` (1..=256).
    pub d_state: usize,
    /// `d_inner = int(ssm_ratio * d_model)`.
    pub ssm_ratio: f64,
    /// Rank of the dt projection; 0 = `"auto"` (`ceil(d_model / 16)`).
    pub dt_rank: usize,
    /// Depthwise conv size (odd, or <= 1 for no conv); ignored by `v0` (always 3).
    pub d_conv: usize,
    /// Non-zero: the conv has a bias; ignored by `v0` (always).
    pub conv_bias: c_int,
    /// VMamba's `forward_type` string (NUL-terminated), e.g. `"v05_noz"`, `"v0"`, `"v3"`.
    pub forward_type: *const c_char,
    /// Non-zero: input and output are `(B, d_model, H, W)`; zero: `(B, H, W, d_model)`.
    pub channel_first: c_int,
}

/// The resolved sizes of a layer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ss2d_layer_dims {
    /// Channels of the input and output.
    pub d_model: usize,
    /// Channels of the scan.
    pub d_inner: usize,
    /// State size.
    pub d_state: usize,
    /// Resolved dt rank.
    pub dt_rank: usize,
    /// Effective conv size (<= 1: no conv).
    pub d_conv: usize,
    /// 1 when the input is `(B, d_model, H, W)`, 0 for `(B, H, W, d_model)`.
    pub channel_first: c_int,
    /// 1 when the forward type has a z gate.
    pub has_z: c_int,
}

fn cstr<'a>(p: *const c_char, what: &str) -> Res<&'a str> {
    if p.is_null() {
        return Err(Fail::new(
            ss2d_status::SS2D_NULL_POINTER,
            format!("`{what}` is NULL"),
        ));
    }
    // SAFETY: non-NULL; NUL-terminated and unchanged during the call by the API contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        Fail::new(
            ss2d_status::SS2D_BAD_VALUE,
            format!("`{what}` is not valid UTF-8"),
        )
    })
}

/// Creates a layer from its configuration and weights under VMamba's state_dict names
/// (`in_proj.weight`, `conv2d.weight`, `conv2d.bias`, `x_proj_weight`, `dt_projs_weight`,
/// `dt_projs_bias`, `A_logs`, `Ds`, `out_norm.weight`, `out_norm.bias`, `out_proj.weight`,
/// optional `in_proj.bias` / `out_proj.bias`), each looked up as `prefix + name` (`prefix` may
/// be NULL or `""`; e.g. `"layers.0.blocks.1.op."` for a VSSM checkpoint). Tensors the
/// configuration does not use are ignored (except a conv weight or bias the configuration
/// rules out, an error); duplicate names are an error. The weights are copied: the tensors
/// may be freed after the call. On success `*out_layer` receives the handle; on error it is
/// set to NULL.
///
/// # Safety
/// `config` and `out_layer` are valid pointers; `config->forward_type` and every name are
/// NUL-terminated strings; `tensors` points to `n_tensors` valid entries (it may be NULL when
/// `n_tensors` is 0) whose data is readable at every element it addresses; `prefix` is NULL
/// or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn ss2d_layer_create(
    config: *const ss2d_layer_config,
    tensors: *const ss2d_named_tensor,
    n_tensors: usize,
    prefix: *const c_char,
    out_layer: *mut *mut ss2d_layer,
) -> c_int {
    if !out_layer.is_null() {
        // SAFETY: non-NULL and writable by the contract.
        unsafe { out_layer.write(std::ptr::null_mut()) };
    }
    guard(|| {
        if out_layer.is_null() {
            return Err(Fail::new(
                ss2d_status::SS2D_NULL_POINTER,
                "`out_layer` is NULL",
            ));
        }
        // SAFETY: the contract of this function.
        let cfg = unsafe { arg(config, "config") }?;
        let forward_type = cstr(cfg.forward_type, "config.forward_type")?;
        let prefix = if prefix.is_null() {
            ""
        } else {
            cstr(prefix, "prefix")?
        };
        let config = Ss2dConfig {
            d_model: cfg.d_model,
            d_state: cfg.d_state,
            ssm_ratio: cfg.ssm_ratio,
            dt_rank: if cfg.dt_rank == 0 {
                DtRank::Auto
            } else {
                DtRank::Fixed(cfg.dt_rank)
            },
            d_conv: cfg.d_conv,
            conv_bias: flag(cfg.conv_bias),
            forward_type: forward_type.to_string(),
            channel_first: flag(cfg.channel_first),
        };
        let entries: &[ss2d_named_tensor] = if n_tensors == 0 {
            &[]
        } else if tensors.is_null() {
            return Err(Fail::new(
                ss2d_status::SS2D_NULL_POINTER,
                format!("`tensors` is NULL with n_tensors = {n_tensors}"),
            ));
        } else {
            // SAFETY: `tensors` points to `n_tensors` valid entries (contract).
            unsafe { std::slice::from_raw_parts(tensors, n_tensors) }
        };
        let mut map: HashMap<&str, (Vec<usize>, Cow<'_, [f32]>)> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let name = cstr(e.name, &format!("tensors[{i}].name"))?;
            let v = input_value(&e.tensor, "named tensor").map_err(|f| Fail {
                msg: format!("tensor `{name}`: {}", f.msg),
                ..f
            })?;
            // SAFETY: readable at every addressed element and unchanged during the call
            // (contract); validated.
            let data = unsafe { v.read_rm() };
            if map.insert(name, (v.dims().to_vec(), data)).is_some() {
                return Err(Fail::new(
                    ss2d_status::SS2D_BAD_VALUE,
                    format!("tensor name `{name}` appears twice"),
                ));
            }
        }
        let lookup =
            |name: &str| -> Option<TensorRef<'_>> { map.get(name).map(|(s, d)| (&s[..], &d[..])) };
        let inner = Ss2d::from_tensors(&config, prefix, &lookup)?;
        let handle = Box::into_raw(Box::new(ss2d_layer { inner }));
        // SAFETY: non-NULL (checked) and writable (contract).
        unsafe { out_layer.write(handle) };
        Ok(())
    })
}

/// Writes the resolved sizes of `layer` to `*dims`.
///
/// # Safety
/// `layer` is a live handle from `ss2d_layer_create`; `dims` is writable.
#[no_mangle]
pub unsafe extern "C" fn ss2d_layer_get_dims(
    layer: *const ss2d_layer,
    dims: *mut ss2d_layer_dims,
) -> c_int {
    guard(|| {
        // SAFETY: a live handle (contract).
        let l = unsafe { arg(layer, "layer") }?;
        if dims.is_null() {
            return Err(Fail::new(ss2d_status::SS2D_NULL_POINTER, "`dims` is NULL"));
        }
        let d = l.inner.dims();
        let out = ss2d_layer_dims {
            d_model: d.d_model,
            d_inner: d.d_inner,
            d_state: d.d_state,
            dt_rank: d.dt_rank,
            d_conv: d.d_conv,
            channel_first: d.channel_first as c_int,
            has_z: d.forward.has_z() as c_int,
        };
        // SAFETY: non-NULL (checked), writable (contract).
        unsafe { dims.write(out) };
        Ok(())
    })
}

/// Runs the layer: `output = SS2D(input)`, both `(B, d_model, H, W)` when the layer is
/// channel-first, else `(B, H, W, d_model)`, any strides (dense row-major tensors are used in
/// place, others go through temporaries). The output must not overlap the input. The layer
/// allocates its own intermediates (`exec->scratch` is not used). Every stage runs on the
/// exec (the library pool or the host's `parallel_for`, a few rounds per stage). Bitwise
/// identical in every mode.
///
/// # Safety
/// `layer` is a live handle; `input` / `output` are valid descriptors whose data is readable
/// (input) or writable and exclusive (output) during the call; `exec` is NULL or valid; a
/// `parallel_for` keeps its contract.
#[no_mangle]
pub unsafe extern "C" fn ss2d_layer_forward(
    layer: *const ss2d_layer,
    input: *const ss2d_const_tensor,
    output: *const ss2d_tensor,
    exec: *const ss2d_exec,
) -> c_int {
    // SAFETY: the contract of this function.
    guard(|| unsafe { forward(layer, input, output, exec) })
}

/// # Safety
/// See [`ss2d_layer_forward`].
unsafe fn forward(
    layer: *const ss2d_layer,
    input: *const ss2d_const_tensor,
    output: *const ss2d_tensor,
    exec: *const ss2d_exec,
) -> Res<()> {
    // SAFETY: the contract of `ss2d_layer_forward`.
    let l = unsafe { arg(layer, "layer") }?;
    // SAFETY: as above.
    let iv = unsafe { t::input(input, "input") }?;
    // SAFETY: as above.
    let ov = unsafe { t::output(output, "output") }?;
    // SAFETY: as above.
    let ex = unsafe { read_exec(exec) }?;
    let layer = &l.inner;
    let grid = layer.dims().grid_of(iv.dims())?;
    ov.expect(iv.dims(), "(like input)")?;
    check_disjoint(&[&ov], &[&iv])?;
    let id: Vec<usize> = (0..ov.ndim).collect();
    // SAFETY: readable and unwritten during the call (contract), disjoint from the output.
    let x = unsafe { iv.read(&id, &ex) }?;
    // SAFETY: writable and exclusive (contract), disjoint from the input (checked).
    let mut ob = unsafe { ov.out_buf(&id) };
    let r = layer.forward(&x, grid, ob.slice(), ex.par());
    ex.outcome(r)?;
    // SAFETY: as for `out_buf`.
    unsafe { ob.finish(&ex) }?;
    ex.outcome(Ok::<(), Fail>(()))
}

/// Releases a layer (NULL is ignored). No call may be using it.
///
/// # Safety
/// `layer` is NULL or a handle from `ss2d_layer_create` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ss2d_layer_free(layer: *mut ss2d_layer) {
    if layer.is_null() {
        return;
    }
    // SAFETY: a live handle from `Box::into_raw` in `ss2d_layer_create` (contract), freed
    // once. Dropping plain vectors cannot panic; the guard keeps even that from unwinding.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(layer) })));
}
