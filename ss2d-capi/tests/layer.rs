//! The SS2D layer through the C ABI: created from named tensors + config, run on every golden
//! case (VMamba's own SS2D forward), bitwise identical in every exec mode, strided input and
//! output, and its dims.

mod common;

use std::ffi::CString;
use std::ptr::{null, null_mut};

use common::*;
use ss2d_capi::*;

struct Loaded {
    layer: *mut ss2d_layer,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // SAFETY: a handle from ss2d_layer_create, freed once.
        unsafe { ss2d_layer_free(self.layer) };
    }
}

fn config(g: &Golden, ft: &CString) -> ss2d_layer_config {
    let dt = g.meta("dt_rank");
    ss2d_layer_config {
        d_model: g.meta_usize("d_model"),
        d_state: g.meta_usize("d_state"),
        ssm_ratio: g.meta("ssm_ratio").parse().unwrap(),
        dt_rank: if dt == "auto" { 0 } else { dt.parse().unwrap() },
        d_conv: g.meta_usize("d_conv"),
        conv_bias: g.meta_bool("conv_bias") as i32,
        forward_type: ft.as_ptr(),
        channel_first: g.meta_bool("channel_first") as i32,
    }
}

/// Creates the layer from every tensor of the file except input/output/debug (with a prefix).
fn load(g: &Golden, prefix: &str) -> Result<Loaded, (i32, String)> {
    let ft = CString::new(g.meta("forward_type")).unwrap();
    let cfg = config(g, &ft);
    let names: Vec<(CString, &str)> = g
        .tensors
        .keys()
        .filter(|k| *k != "input" && *k != "output" && !k.starts_with("debug."))
        .map(|k| (CString::new(format!("{prefix}{k}")).unwrap(), k.as_str()))
        .collect();
    let named: Vec<ss2d_named_tensor> = names
        .iter()
        .map(|(c, k)| ss2d_named_tensor {
            name: c.as_ptr(),
            tensor: cten(g.tensor(k), g.shape(k)),
        })
        .collect();
    let pfx = CString::new(prefix).unwrap();
    let mut layer = null_mut();
    // SAFETY: valid config, entries and output pointer.
    let s =
        unsafe { ss2d_layer_create(&cfg, named.as_ptr(), named.len(), pfx.as_ptr(), &mut layer) };
    if s == 0 {
        assert!(!layer.is_null());
        Ok(Loaded { layer })
    } else {
        assert!(layer.is_null());
        Err((s, last_error()))
    }
}

fn forward(l: &Loaded, x: &ss2d_const_tensor, y: &ss2d_tensor, ex: &ss2d_exec) -> i32 {
    // SAFETY: a live handle and descriptors over live buffers.
    unsafe { ss2d_layer_forward(l.layer, x, y, ex) }
}

#[test]
fn golden_layers_in_every_exec_mode() {
    let files = golden_cases("ss2d");
    assert_eq!(files.len(), 15);
    for p in files {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let g = Golden::load(&p);
        let l = load(&g, "layers.0.blocks.1.op.").unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let mut dims = ss2d_layer_dims::default();
        // SAFETY: live handle, writable dims.
        ok(unsafe { ss2d_layer_get_dims(l.layer, &mut dims) });
        assert_eq!(dims.d_model, g.meta_usize("d_model"));
        assert_eq!(dims.d_inner, g.meta_usize("d_inner"));
        assert_eq!(dims.dt_rank, g.meta_usize("dt_rank_resolved"));
        assert_eq!(dims.channel_first != 0, g.meta_bool("channel_first"));
        assert_eq!(dims.has_z != 0, g.meta_bool("has_z"));

        let shape = g.shape("input").to_vec();
        let want = g.tensor("output");
        let xt = cten(g.tensor("input"), &shape);
        let big = g.meta_usize("L") > 1000;
        let execs: Vec<(&str, ss2d_exec)> = if big {
            vec![
                ("seq", exec_seq()),
                ("threads2", exec_threads(2)),
                ("host2", exec_host(2, 0)),
            ]
        } else {
            all_execs()
        };
        let mut first: Option<Vec<f32>> = None;
        for (label, ex) in execs {
            let mut y = vec![f32::NAN; want.len()];
            let yt = mten(&mut y, &shape);
            ok(forward(&l, &xt, &yt, &ex));
            let e = rel_err(&y, want);
            assert!(e <= 1e-5, "{name} {label}: output rel err {e:e}");
            let f = first.get_or_insert_with(|| y.clone());
            assert_eq!(bits(f), bits(&y), "{name} {label}: not bitwise");
        }
        if !big {
            // Strided input and output (gathered / scattered): same bits.
            let perm: Vec<usize> = vec![2, 0, 3, 1];
            let xs = Strided::new(g.tensor("input"), &shape, &perm, 2, 3, &[1]);
            let zeros = vec![0.0f32; want.len()];
            let mut ys = Strided::new(&zeros, &shape, &[3, 2, 1, 0], 1, 1, &[0, 2]);
            let yt = ys.m();
            ok(forward(&l, &xs.c(), &yt, &exec_host(3, 0)));
            assert_eq!(
                bits(&ys.read_rm()),
                bits(first.as_ref().unwrap()),
                "{name}: strided"
            );
            assert_eq!(ys.touched_outside(), 0);
        }
    }
}

#[test]
fn layer_errors() {
    let p = &golden_cases("ss2d")[0];
    let g = Golden::load(p);
    // The wrong prefix: the tensors are missing.
    let ft = CString::new(g.meta("forward_type")).unwrap();
    let cfg = config(&g, &ft);
    let mut layer = std::ptr::dangling_mut::<ss2d_layer>();
    let pfx = CString::new("nope.").unwrap();
    // SAFETY: valid pointers; zero tensors with a NULL array is allowed.
    let s = unsafe { ss2d_layer_create(&cfg, null(), 0, pfx.as_ptr(), &mut layer) };
    assert_eq!(s, ss2d_status::SS2D_BAD_VALUE as i32);
    assert!(layer.is_null(), "out_layer must be NULL after an error");
    assert!(last_error().contains("missing tensor"), "{}", last_error());

    // A bad forward type and config values.
    let bad_ft = CString::new("v9_bogus").unwrap();
    let cfg2 = config(&g, &bad_ft);
    // SAFETY: as above.
    let s = unsafe { ss2d_layer_create(&cfg2, null(), 0, null(), &mut layer) };
    assert_eq!(s, ss2d_status::SS2D_BAD_VALUE as i32);
    assert!(last_error().contains("forward_type"), "{}", last_error());
    let cfg3 = ss2d_layer_config {
        forward_type: null(),
        ..cfg
    };
    // SAFETY: as above.
    let s = unsafe { ss2d_layer_create(&cfg3, null(), 0, null(), &mut layer) };
    assert_eq!(s, ss2d_status::SS2D_NULL_POINTER as i32);
    // SAFETY: NULL out_layer is refused.
    let s = unsafe { ss2d_layer_create(&cfg, null(), 0, null(), null_mut()) };
    assert_eq!(s, ss2d_status::SS2D_NULL_POINTER as i32);

    // A duplicate name.
    let a = CString::new("Ds").unwrap();
    let t = cten(g.tensor("Ds"), g.shape("Ds"));
    let two = [
        ss2d_named_tensor {
            name: a.as_ptr(),
            tensor: t,
        },
        ss2d_named_tensor {
            name: a.as_ptr(),
            tensor: t,
        },
    ];
    // SAFETY: as above.
    let s = unsafe { ss2d_layer_create(&cfg, two.as_ptr(), 2, null(), &mut layer) };
    assert_eq!(s, ss2d_status::SS2D_BAD_VALUE as i32);
    assert!(last_error().contains("twice"), "{}", last_error());

    // A wrong weight shape.
    let l = load(&g, "").unwrap();
    let shape = g.shape("input").to_vec();
    let mut bad_shape = shape.clone();
    bad_shape[1] += 1;
    let x = vec![0.0f32; bad_shape.iter().product()];
    let mut y = vec![5.0f32; x.len()];
    let yt = mten(&mut y, &bad_shape);
    assert_eq!(
        forward(&l, &cten(&x, &bad_shape), &yt, &exec_seq()),
        ss2d_status::SS2D_BAD_SHAPE as i32
    );
    assert!(y.iter().all(|&v| v == 5.0));
    // In-place forward (output aliasing input) is refused.
    let mut io = g.tensor("input").to_vec();
    let xt = cten(&io, &shape);
    let yt = mten(&mut io, &shape);
    assert_eq!(
        forward(&l, &xt, &yt, &exec_seq()),
        ss2d_status::SS2D_OVERLAP as i32
    );
    assert_eq!(bits(&io), bits(g.tensor("input")));
    // SAFETY: NULL is ignored.
    unsafe { ss2d_layer_free(null_mut()) };
}
