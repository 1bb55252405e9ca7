//! End-to-end tests of `ss2d layer`, `ss2d demo` and `ss2d bench --op layer`: golden files,
//! the `--prefix` path, flags over metadata, determinism across threads, hostile inputs (one
//! stderr line, exit 1, no output file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use ss2d_cli::io::{write_tensors, OutTensor, TensorFile};

mod common;
use common::*;

fn golden_files() -> Vec<PathBuf> {
    let v = golden_cases("ss2d");
    assert_eq!(v.len(), 15, "golden ss2d files");
    v
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: status {:?}, stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Exit 1, exactly one stderr line `ss2d: error: ...` containing `needle`.
fn assert_fails(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("ss2d: error: "), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The `output` of OUT checked against the golden `output` of IN.
fn check_output(golden: &Path, out: &Path) -> Vec<f32> {
    let g = TensorFile::open(golden).unwrap();
    let o = TensorFile::open(out).unwrap();
    let want = g.tensor("output").unwrap();
    let got = o.tensor("output").unwrap();
    assert_eq!(got.shape(), want.shape());
    let e = rel_err(got.data(), want.data());
    assert!(e <= 1e-5, "{}: rel err {e:e}", golden.display());
    got.data().to_vec()
}

/// Copies `src`'s tensors (renamed by `rename`, dropped when it returns `None`) and metadata
/// (edited by `meta`) into `dst`.
fn rewrite(
    src: &Path,
    dst: &Path,
    rename: impl Fn(&str) -> Option<String>,
    meta: impl Fn(&mut BTreeMap<String, String>),
) {
    let f = TensorFile::open(src).unwrap();
    let names: Vec<String> = f.names().map(str::to_string).collect();
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for n in &names {
        if let Some(new) = rename(n) {
            let t = f.tensor(n).unwrap();
            owned.push((new, t.shape().to_vec(), t.data().to_vec()));
        }
    }
    let tensors: Vec<OutTensor<'_>> = owned
        .iter()
        .map(|(n, s, d)| OutTensor {
            name: n,
            shape: s,
            data: d,
        })
        .collect();
    let mut m = f.metadata().clone();
    meta(&mut m);
    write_tensors(dst, &tensors, &m).unwrap();
}

#[test]
fn every_golden_file_within_tolerance() {
    let dir = TempDir::new("golden");
    for g in golden_files() {
        let out = dir.path("out.safetensors");
        let o = ss2d(&["layer", p(&g), p(&out), "--threads", "2"]);
        assert_ok(&o, &g.display().to_string());
        check_output(&g, &out);
        let meta = TensorFile::open(&out).unwrap().metadata().clone();
        assert_eq!(meta.get("op").map(String::as_str), Some("layer"));
    }
}

#[test]
fn reference_and_thread_counts() {
    let dir = TempDir::new("threads");
    for name in [
        "ss2d_stage1_s1l8_v05noz_ds1_r1_cf_d96_56x56.safetensors",
        "ss2d_v0_ds16_r2_d16_b2_8x8.safetensors",
        "ss2d_v052dc_noz_ds4_r1_cf_d16_b1_5x7.safetensors",
    ] {
        let g = golden_dir().join("ss2d").join(name);
        let mut outs = Vec::new();
        for t in ["1", "2", "3"] {
            let out = dir.path(&format!("t{t}.safetensors"));
            assert_ok(&ss2d(&["layer", p(&g), p(&out), "--threads", t]), name);
            outs.push(check_output(&g, &out));
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&outs[0]) == bits(&outs[1]) && bits(&outs[0]) == bits(&outs[2]));
        let out = dir.path("ref.safetensors");
        assert_ok(&ss2d(&["layer", p(&g), p(&out), "--reference"]), name);
        check_output(&g, &out);
    }
}

#[test]
fn prefix_path_and_input_file() {
    let dir = TempDir::new("prefix");
    let g = golden_dir().join("ss2d/ss2d_v05_ds16_r2_cl_d16_b2_5x7.safetensors");
    let prefix = "layers.0.blocks.1.op.";
    // A checkpoint-like file: prefixed module tensors, no config metadata, no input.
    let ckpt = dir.path("ckpt.safetensors");
    rewrite(
        &g,
        &ckpt,
        |n| {
            if n == "input" || n == "output" || n.starts_with("debug.") {
                None
            } else {
                Some(format!("{prefix}{n}"))
            }
        },
        |m| m.clear(),
    );
    let input = dir.path("input.safetensors");
    rewrite(
        &g,
        &input,
        |n| (n == "input").then(|| n.to_string()),
        |m| m.clear(),
    );
    let out = dir.path("out.safetensors");
    // forward_type and channel_first cannot be inferred: flags give them; sizes come from
    // the tensors.
    let o = ss2d(&[
        "layer",
        p(&ckpt),
        p(&out),
        "--prefix",
        prefix,
        "--input-file",
        p(&input),
        "--forward-type",
        "v05",
        "--channel-first",
        "false",
    ]);
    assert_ok(&o, "prefix");
    check_output(&g, &out);
    // Without --forward-type: one line naming the flag, no output.
    let out2 = dir.path("out2.safetensors");
    let o = ss2d(&[
        "layer",
        p(&ckpt),
        p(&out2),
        "--prefix",
        prefix,
        "--input-file",
        p(&input),
        "--channel-first",
        "false",
    ]);
    assert_fails(&o, "--forward-type");
    // Without the prefix nothing is found.
    let o = ss2d(&[
        "layer",
        p(&ckpt),
        p(&out2),
        "--input-file",
        p(&input),
        "--forward-type",
        "v05",
        "--channel-first",
        "false",
    ]);
    assert_fails(&o, "missing tensor");
    assert!(!out2.exists());
    // Prefixed keys and the input in one file, config in the metadata.
    let both = dir.path("both.safetensors");
    rewrite(
        &g,
        &both,
        |n| {
            if n == "input" || n == "output" {
                Some(n.to_string())
            } else {
                Some(format!("{prefix}{n}"))
            }
        },
        |_| {},
    );
    let out3 = dir.path("out3.safetensors");
    assert_ok(
        &ss2d(&["layer", p(&both), p(&out3), "--prefix", prefix]),
        "both",
    );
    check_output(&g, &out3);
}

#[test]
fn flags_win_over_metadata() {
    let dir = TempDir::new("flags");
    let g = golden_dir().join("ss2d/ss2d_v05noz_ds1_r1_cf_d16_b2_5x7.safetensors");
    let bad = dir.path("bad_meta.safetensors");
    rewrite(
        &g,
        &bad,
        |n| Some(n.to_string()),
        |m| {
            m.insert("forward_type".into(), "v99".into());
            m.insert("d_state".into(), "7".into());
        },
    );
    let out = dir.path("out.safetensors");
    assert_fails(&ss2d(&["layer", p(&bad), p(&out)]), "v99");
    assert!(!out.exists());
    let o = ss2d(&[
        "layer",
        p(&bad),
        p(&out),
        "--forward-type",
        "v05_noz",
        "--d-state",
        "1",
    ]);
    assert_ok(&o, "flags");
    check_output(&g, &out);
}

#[test]
fn hostile_inputs_fail_with_one_line_and_no_output() {
    let dir = TempDir::new("hostile");
    let g = golden_dir().join("ss2d/ss2d_v05_ds16_r2_cf_d16_b1_7x5.safetensors");
    type Make<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Make<'_>, &str)> = vec![
        (
            "missing",
            Box::new(|dst: &Path| {
                rewrite(
                    &g,
                    dst,
                    |n| (n != "x_proj_weight").then(|| n.to_string()),
                    |_| {},
                )
            }),
            "x_proj_weight",
        ),
        (
            "no_input",
            Box::new(|dst: &Path| {
                rewrite(&g, dst, |n| (n != "input").then(|| n.to_string()), |_| {})
            }),
            "input",
        ),
        (
            "unknown_type",
            Box::new(|dst: &Path| {
                rewrite(
                    &g,
                    dst,
                    |n| Some(n.to_string()),
                    |m| {
                        m.insert("forward_type".into(), "v07".into());
                    },
                )
            }),
            "unknown forward_type `v07`",
        ),
        (
            "even_conv",
            Box::new(|dst: &Path| {
                rewrite(
                    &g,
                    dst,
                    |n| Some(n.to_string()),
                    |m| {
                        m.insert("d_conv".into(), "4".into());
                    },
                )
            }),
            "d_conv",
        ),
        (
            "bad_meta",
            Box::new(|dst: &Path| {
                rewrite(
                    &g,
                    dst,
                    |n| Some(n.to_string()),
                    |m| {
                        m.insert("d_model".into(), "sixteen".into());
                    },
                )
            }),
            "d_model",
        ),
        (
            "dstate_mismatch",
            Box::new(|dst: &Path| {
                rewrite(
                    &g,
                    dst,
                    |n| Some(n.to_string()),
                    |m| {
                        m.insert("d_state".into(), "4".into());
                    },
                )
            }),
            "A_logs",
        ),
    ];
    for (tag, make, needle) in cases {
        let src = dir.path(&format!("{tag}.safetensors"));
        make(&src);
        let out = dir.path(&format!("{tag}.out.safetensors"));
        assert_fails(&ss2d(&["layer", p(&src), p(&out)]), needle);
        assert!(!out.exists(), "{tag}: output written");
    }
    // Wrong shapes: a weight and the input (written by hand: the rewrite keeps shapes).
    let f = TensorFile::open(&g).unwrap();
    for (tag, victim, needle) in [
        ("weight_shape", "out_proj.weight", "out_proj.weight"),
        ("input_shape", "input", "input has shape"),
    ] {
        let names: Vec<String> = f.names().map(str::to_string).collect();
        let owned: Vec<(String, Vec<usize>, Vec<f32>)> = names
            .iter()
            .map(|n| {
                let t = f.tensor(n).unwrap();
                let mut s = t.shape().to_vec();
                if n == victim {
                    // Same element count, other shape.
                    s.reverse();
                }
                (n.clone(), s, t.data().to_vec())
            })
            .collect();
        let tensors: Vec<OutTensor<'_>> = owned
            .iter()
            .map(|(n, s, d)| OutTensor {
                name: n,
                shape: s,
                data: d,
            })
            .collect();
        let src = dir.path(&format!("{tag}.safetensors"));
        write_tensors(&src, &tensors, f.metadata()).unwrap();
        let out = dir.path(&format!("{tag}.out.safetensors"));
        assert_fails(&ss2d(&["layer", p(&src), p(&out)]), needle);
        assert!(!out.exists(), "{tag}: output written");
    }
    // Not a file at all, and an unknown flag value.
    let out = dir.path("x.safetensors");
    assert_fails(
        &ss2d(&["layer", p(&dir.path("nope.safetensors")), p(&out)]),
        "nope.safetensors",
    );
    assert_fails(
        &ss2d(&["layer", p(&g), p(&out), "--dt-rank", "zero"]),
        "dt_rank",
    );
    assert!(!out.exists());
    assert!(dir
        .entries()
        .iter()
        .all(|e| !e.contains(".out.") && !e.starts_with('.')));
}

#[test]
fn demo_checks_and_reports() {
    let o = ss2d(&["demo", "--threads", "2"]);
    assert_ok(&o, "demo");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("VMamba-T[s1l8]"), "{s}");
    assert!(s.contains(": ok"), "{s}");
    assert!(s.contains("time per forward"), "{s}");
    assert!(s.contains("2 thread(s)"), "{s}");
    assert!(s.contains("isa x86-64") || s.contains("isa "), "{s}");
    // stderr is a pipe here, not a terminal: no progress line, no carriage return.
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !e.contains('\r'),
        "carriage return in a non-terminal stderr: {e:?}"
    );
    assert!(
        e.is_empty(),
        "progress written to a non-terminal stderr: {e:?}"
    );
}

#[test]
fn bench_layer_json_and_sweep() {
    let o = ss2d(&[
        "bench",
        "--op",
        "layer",
        "--config",
        "s1l8",
        "--json",
        "--reps",
        "1",
        "--sweep",
        "h=8,12",
        "--sweep",
        "d_state=1,4",
    ]);
    assert_ok(&o, "bench");
    let s = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 4, "{s}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["op"], "layer");
        assert_eq!(v["config"], "s1l8");
        assert!(v["total"]["median_s"].as_f64().unwrap() > 0.0);
        assert!(v["stages"]["scan"]["median_s"].as_f64().is_some());
        assert!(v["param_count"].as_u64().unwrap() > 0);
        // Every stage has its limit on the measured peak; the forward's is their sum.
        assert!(v["peak"]["flops_per_s_per_core"].as_f64().unwrap() > 1e6);
        let sum: f64 = ["gemm_in", "conv", "scan", "norm_gate", "gemm_out"]
            .iter()
            .map(|k| v["stages"][k]["limit_s"].as_f64().unwrap())
            .sum();
        let total = v["total"]["limit_s"].as_f64().unwrap();
        assert!(
            total > 0.0 && (sum / total - 1.0).abs() < 1e-9,
            "{sum} {total}"
        );
    }
    assert_fails(
        &ss2d(&["bench", "--op", "layer", "--sweep", "d_conv=2"]),
        "d_conv",
    );
    assert_fails(
        &ss2d(&["bench", "--op", "layer", "--sweep", "colour=red"]),
        "unknown sweep key",
    );
    assert_fails(
        &ss2d(&["bench", "--op", "scan", "--config", "s1l8"]),
        "--op layer only",
    );
}
