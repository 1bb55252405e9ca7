//! End-to-end tests of the `ss2d` binary: golden data, determinism across thread counts,
//! hostile inputs (one stderr line, exit 1, no output file) and the bench JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use ss2d_cli::io::{write_tensors, OutTensor, TensorFile};

mod common;
use common::*;

fn golden_scan_files() -> Vec<PathBuf> {
    let v = golden_cases("selective_scan");
    assert_eq!(v.len(), 14, "golden scan files");
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

/// `max|a - b| <= tol * max|b|` with a tensor-named message.
/// Runs `ss2d scan` on every golden file (with `extra` flags) and checks `out` and
/// `last_state` against the expected tensors.
fn check_golden(extra: &[&str], tag: &str) {
    let tmp = TempDir::new(tag);
    for f in golden_scan_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let out = tmp.path(&name);
        let mut args = vec!["scan", p(&f), p(&out)];
        args.extend_from_slice(extra);
        let o = ss2d(&args);
        assert_ok(&o, &name);
        // The expected outputs beside the inputs are named in one note, nothing else.
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{name}: stderr {err:?}");
        assert!(
            err.starts_with("note: ") && err.contains("does not read") && err.contains("`out`"),
            "{name}: stderr {err:?}"
        );
        let want = TensorFile::open(&f).unwrap();
        let got = TensorFile::open(&out).unwrap();
        let w = want.tensor("out").unwrap();
        let g = got.tensor("out").unwrap();
        assert_eq!(g.shape(), w.shape(), "{name}: out shape");
        assert_close(&format!("{name} out"), g.data(), w.data(), 1e-5);
        match want.optional("last_state").unwrap() {
            Some(w) => {
                let g = got
                    .optional("last_state")
                    .unwrap()
                    .unwrap_or_else(|| panic!("{name}: last_state not written"));
                assert_eq!(g.shape(), w.shape(), "{name}: last_state shape");
                assert_close(&format!("{name} last_state"), g.data(), w.data(), 1e-5);
            }
            None => assert!(!got.contains("last_state"), "{name}: unexpected last_state"),
        }
    }
}

#[test]
fn golden_kernel() {
    check_golden(&[], "kernel");
}

#[test]
fn golden_kernel_two_threads() {
    check_golden(&["--threads", "2"], "kernel2");
}

#[test]
fn golden_reference() {
    check_golden(&["--reference"], "reference");
}

#[test]
fn threads_are_bitwise_identical() {
    let tmp = TempDir::new("threads");
    for f in golden_scan_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mut outs = Vec::new();
        for t in ["1", "2", "3"] {
            let out = tmp.path(&format!("{t}-{name}"));
            let o = ss2d(&["scan", p(&f), p(&out), "--threads", t]);
            assert_ok(&o, &name);
            outs.push(TensorFile::open(&out).unwrap());
        }
        for name_t in ["out", "last_state"] {
            let bits = |f: &TensorFile| {
                f.optional(name_t)
                    .unwrap()
                    .map(|t| t.data().iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
            };
            let first = bits(&outs[0]);
            for other in &outs[1..] {
                assert_eq!(
                    bits(other),
                    first,
                    "{name} {name_t}: differs across threads"
                );
            }
        }
    }
}

#[test]
fn flags_override_metadata() {
    let tmp = TempDir::new("flags");
    let dir = golden_dir().join("selective_scan");
    // This file says delta_softplus=false, return_last_state=true.
    let f = dir.join("ss_b2_d3_l7_n1_g1_nosoftplus.safetensors");
    let golden = TensorFile::open(&f).unwrap();
    assert_eq!(golden.meta_bool("delta_softplus").unwrap(), Some(false));

    let k = tmp.path("k.safetensors");
    let r = tmp.path("r.safetensors");
    let flags = ["--delta-softplus", "true", "--return-last-state", "false"];
    let mut args = vec!["scan", p(&f), p(&k)];
    args.extend(flags);
    assert_ok(&ss2d(&args), "kernel with flags");
    let mut args = vec!["scan", p(&f), p(&r), "--reference"];
    args.extend(flags);
    assert_ok(&ss2d(&args), "reference with flags");

    let (k, r) = (TensorFile::open(&k).unwrap(), TensorFile::open(&r).unwrap());
    assert!(!k.contains("last_state") && !r.contains("last_state"));
    assert_eq!(k.meta_bool("delta_softplus").unwrap(), Some(true));
    let ko = k.tensor("out").unwrap();
    // Softplus on: differs from the golden (softplus off) but kernel == reference.
    let g = golden.tensor("out").unwrap();
    assert!(ko
        .data()
        .iter()
        .zip(g.data())
        .any(|(a, b)| (a - b).abs() > 1e-3));
    assert_close(
        "flags out",
        ko.data(),
        r.tensor("out").unwrap().data(),
        1e-5,
    );
}

/// A small valid scan input as raw tensors (B=1, D=3, L=4, N=2, constant B/C).
fn small_inputs() -> Vec<(&'static str, &'static str, Vec<usize>, Vec<u8>)> {
    let seq: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    vec![
        ("u", "F32", vec![1, 3, 4], f32_bytes(&seq)),
        ("delta", "F32", vec![1, 3, 4], f32_bytes(&seq)),
        (
            "A",
            "F32",
            vec![3, 2],
            f32_bytes(&[-1.0, -2.0, -1.0, -2.0, -1.0, -2.0]),
        ),
        ("B", "F32", vec![3, 2], f32_bytes(&[0.5; 6])),
        ("C", "F32", vec![3, 2], f32_bytes(&[0.25; 6])),
        ("D", "F32", vec![3], f32_bytes(&[1.0; 3])),
    ]
}

/// Runs `ss2d scan IN OUT` expecting failure: status 1, one stderr line naming the problem,
/// no OUT file and nothing else left in OUT's directory.
fn expect_failure(input: &Path, out_dir: &TempDir, needles: &[&str]) {
    let before = out_dir.entries();
    let out = out_dir.path("out.safetensors");
    let o = ss2d(&["scan", p(input), p(&out)]);
    check_failure(&o, needles);
    assert!(!out.exists(), "OUT was created");
    assert_eq!(out_dir.entries(), before, "files left behind");
}

fn check_failure(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "status; stderr: {err}");
    assert!(
        o.stdout.is_empty(),
        "stdout not empty: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.ends_with('\n'));
    assert!(err.starts_with("ss2d: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
}

#[test]
fn hostile_inputs() {
    let tmp = TempDir::new("hostile");
    let outd = TempDir::new("hostile-out");

    expect_failure(
        &tmp.path("missing.safetensors"),
        &outd,
        &["missing.safetensors", "cannot read"],
    );

    let empty = tmp.path("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    expect_failure(&empty, &outd, &["empty.safetensors", "empty"]);

    let garbage = tmp.path("garbage.safetensors");
    std::fs::write(
        &garbage,
        b"\x13\x37 this is not a safetensors file at all \xff\xfe",
    )
    .unwrap();
    expect_failure(&garbage, &outd, &["garbage.safetensors", "header length"]);

    // A JSON-ish header that is not JSON.
    let notjson = tmp.path("notjson.safetensors");
    let mut b = 8u64.to_le_bytes().to_vec();
    b.extend(b"{{{{{{{{");
    std::fs::write(&notjson, b).unwrap();
    expect_failure(&notjson, &outd, &["notjson.safetensors", "JSON"]);

    let golden = golden_dir().join("selective_scan/ss_b2_d16_l64_n16_BNL_z_last.safetensors");
    let bytes = std::fs::read(&golden).unwrap();
    let truncated = tmp.path("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    expect_failure(&truncated, &outd, &["truncated.safetensors", "truncated"]);
    // Truncated inside the header.
    let cut = tmp.path("cut.safetensors");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    expect_failure(&cut, &outd, &["cut.safetensors", "header length"]);

    // `u` stored as F64.
    let mut t = small_inputs();
    let u64s: Vec<u8> = (0..12).flat_map(|i| (i as f64).to_le_bytes()).collect();
    t[0] = ("u", "F64", vec![1, 3, 4], u64s);
    let f64f = tmp.path("f64.safetensors");
    write_raw(&f64f, &t, &[]);
    expect_failure(&f64f, &outd, &["`u`", "F64"]);

    // `D` with 2 elements for 3 channels.
    let mut t = small_inputs();
    t[5] = ("D", "F32", vec![2], f32_bytes(&[1.0, 1.0]));
    let wrong_d = tmp.path("wrong_d.safetensors");
    write_raw(&wrong_d, &t, &[]);
    expect_failure(&wrong_d, &outd, &["`D`", "(2,)", "(3,)"]);

    // `D` whose declared shape disagrees with its bytes.
    let mut t = small_inputs();
    t[5] = ("D", "F32", vec![3], f32_bytes(&[1.0, 1.0]));
    let bad_len = tmp.path("bad_len.safetensors");
    write_raw(&bad_len, &t, &[]);
    expect_failure(&bad_len, &outd, &["`D`", "bytes"]);

    // No `u`.
    let mut t = small_inputs();
    t.remove(0);
    let no_u = tmp.path("no_u.safetensors");
    write_raw(&no_u, &t, &[]);
    expect_failure(&no_u, &outd, &["`u`", "missing"]);

    // `A` with the wrong rank.
    let mut t = small_inputs();
    t[2] = ("A", "F32", vec![6], f32_bytes(&[-1.0; 6]));
    let rank = tmp.path("rank.safetensors");
    write_raw(&rank, &t, &[]);
    expect_failure(&rank, &outd, &["`A`", "rank 1"]);

    // Groups that do not divide the channels (core validation).
    let mut t = small_inputs();
    t[3] = ("B", "F32", vec![1, 2, 2, 4], f32_bytes(&[0.5; 16]));
    let groups = tmp.path("groups.safetensors");
    write_raw(&groups, &t, &[]);
    expect_failure(&groups, &outd, &["`B`", "groups"]);

    // d_state over the core's limit.
    let mut t = small_inputs();
    t[2] = ("A", "F32", vec![3, 300], f32_bytes(&[-1.0; 900]));
    t[3] = ("B", "F32", vec![3, 300], f32_bytes(&[0.5; 900]));
    t[4] = ("C", "F32", vec![3, 300], f32_bytes(&[0.5; 900]));
    let dstate = tmp.path("dstate.safetensors");
    write_raw(&dstate, &t, &[]);
    expect_failure(&dstate, &outd, &["d_state", "300"]);

    // A metadata boolean that is not true/false.
    let meta = tmp.path("meta.safetensors");
    write_raw(&meta, &small_inputs(), &[("delta_softplus", "yes")]);
    expect_failure(&meta, &outd, &["delta_softplus", "yes"]);

    // The small input itself is fine, and extra tensors of other dtypes are ignored.
    let mut t = small_inputs();
    t.push(("extra", "I64", vec![1], 7i64.to_le_bytes().to_vec()));
    let ok = tmp.path("ok.safetensors");
    write_raw(&ok, &t, &[]);
    let out = outd.path("ok-out.safetensors");
    assert_ok(&ss2d(&["scan", p(&ok), p(&out)]), "small input");
    assert_eq!(
        TensorFile::open(&out)
            .unwrap()
            .tensor("out")
            .unwrap()
            .shape(),
        &[1, 3, 4]
    );
}

#[test]
fn unwritable_output() {
    let f = golden_dir().join("selective_scan/ss_b1_d1_l1_n1_g1_plain.safetensors");
    let o = ss2d(&["scan", p(&f), "/nonexistent/dir/out.safetensors"]);
    check_failure(&o, &["cannot write /nonexistent/dir/out.safetensors"]);
    assert!(!Path::new("/nonexistent/dir/out.safetensors").exists());

    // OUT is an existing directory: the error is clean and no temporary file is left.
    let tmp = TempDir::new("unwritable");
    let dir = tmp.path("adir");
    std::fs::create_dir(&dir).unwrap();
    let o = ss2d(&["scan", p(&f), p(&dir)]);
    check_failure(&o, &["cannot write", "adir"]);
    assert_eq!(tmp.entries(), ["adir"]);
}

#[test]
fn usage_errors_are_one_line() {
    for args in [
        &[][..],
        &["scan"][..],
        &["frobnicate"][..],
        &["scan", "a", "b", "--threads", "0"][..],
        &["scan", "a", "b", "--delta-softplus", "maybe"][..],
        &["bench", "--shape", "B=1,D=8,L=4,N=2,X=1"][..],
        &["bench", "--shape", "D=0,L=4,N=2"][..],
        &["bench", "--shape", "D=99999999999999999999999,L=4,N=2"][..],
        &[
            "bench",
            "--shape",
            "B=99999999999,D=99999999999,L=99999999999,N=1",
        ][..],
        &["bench", "--shape", "D=6,L=4,N=2,G=4"][..],
        &["bench", "--op", "ss2d", "--shape", "D=8,L=4,N=2"][..],
        &["bench", "--mode", "bidi"][..],
        &["bench", "--op", "layer", "--shape", "D=8,L=4,N=2"][..],
    ] {
        let o = ss2d(args);
        check_failure(&o, &[]);
    }
    let o = ss2d(&["bench", "--op", "layer", "--shape", "D=8,L=4,N=2"]);
    check_failure(&o, &["not --shape"]);
    let o = ss2d(&["--help"]);
    assert_ok(&o, "--help");
    assert!(String::from_utf8_lossy(&o.stdout).contains("scan"));
}

#[test]
fn bench_json() {
    let o = ss2d(&[
        "bench",
        "--shape",
        "B=1,D=16,L=64,N=4,G=2",
        "--json",
        "--reps",
        "3",
    ]);
    assert_ok(&o, "bench");
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["op"], "scan");
    let shape: BTreeMap<String, u64> = serde_json::from_value(v["shape"].clone()).unwrap();
    let want: BTreeMap<String, u64> = [("B", 1), ("D", 16), ("L", 64), ("N", 4), ("G", 2)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(shape, want);
    assert_eq!(v["threads"], 1);
    assert_eq!(
        v["isa"],
        ss2d_std::cpu::level_from_env().expect("SS2D_ISA").name()
    );
    for k in ["kernel", "reference"] {
        let t = v[k]["median_s"].as_f64().unwrap();
        let e = v[k]["elements_per_s"].as_f64().unwrap();
        assert!(t > 0.0 && e > 0.0, "{k}: {t} {e}");
        assert!(
            (e * t / (16.0 * 64.0 * 4.0) - 1.0).abs() < 1e-6,
            "{k}: elements/s"
        );
    }
    assert!(v["speedup"].as_f64().unwrap() > 0.0);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    // The roofline: the kernel's time at the model's limit on the measured peak, its share.
    let peak = v["peak"]["flops_per_s_per_core"].as_f64().unwrap();
    assert!(peak > 1e6, "{peak}");
    assert_eq!(v["peak"]["isa"], v["isa"]);
    let limit = v["kernel"]["limit_s"].as_f64().unwrap();
    // The roof: the larger of the arithmetic at the peak and the traffic (u, delta, out per
    // position; B and C per (g, n, l), G = 2) at the measured bandwidth.
    let bw = v["peak"]["bytes_per_s"].as_f64().unwrap();
    assert!(bw > 1e6, "{bw}");
    let want = (16.0 * 64.0 / 16.0 * (19.0 + 11.0 * 4.0) * 32.0 / peak)
        .max(4.0 * (3.0 * 16.0 * 64.0 + 2.0 * 2.0 * 4.0 * 64.0) / bw);
    assert!((limit / want - 1.0).abs() < 1e-9, "{limit} {want}");
    let share = v["kernel"]["roofline"].as_f64().unwrap();
    let t = v["kernel"]["median_s"].as_f64().unwrap();
    assert!((share * t / limit - 1.0).abs() < 1e-9, "{share}");

    // Two shapes: two lines; the table form has a header and one row per shape.
    let o = ss2d(&[
        "bench",
        "--shape",
        "D=8,L=16,N=2",
        "--shape",
        "B=2,D=8,L=16,N=1,G=2",
        "--json",
        "--reps",
        "1",
    ]);
    assert_ok(&o, "bench two shapes");
    assert_eq!(String::from_utf8(o.stdout).unwrap().lines().count(), 2);
    let o = ss2d(&[
        "bench",
        "--shape",
        "D=8,L=16,N=2",
        "--reps",
        "1",
        "--threads",
        "2",
    ]);
    assert_ok(&o, "bench table");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("B=1,D=8,L=16,N=2,G=1"), "{text}");
    assert!(text.contains("2 thread"), "{text}");
    assert!(text.contains("FMA peak at"), "{text}");
    assert!(text.contains(" roof "), "{text}");
}

/// The writer used by the command round-trips through the reader the tests use.
#[test]
fn writer_round_trip() {
    let tmp = TempDir::new("writer");
    let path = tmp.path("w.safetensors");
    let data: Vec<f32> = (0..6).map(|i| i as f32).collect();
    write_tensors(
        &path,
        &[OutTensor {
            name: "x",
            shape: &[2, 3],
            data: &data,
        }],
        &BTreeMap::new(),
    )
    .unwrap();
    let f = TensorFile::open(&path).unwrap();
    assert_eq!(f.tensor("x").unwrap().data(), &data[..]);
    assert!(f.tensor("x").unwrap().is_borrowed());
}

/// `initial_state` (B, D, N) is the state before the first step: the output equals the scalar
/// reference's with that state, and differs from the output without it.
#[test]
fn scan_reads_initial_state() {
    let tmp = TempDir::new("init");
    let init: Vec<f32> = (0..6).map(|i| 0.75 - i as f32 * 0.3).collect();
    let mut with = small_inputs();
    with.push(("initial_state", "F32", vec![1, 3, 2], f32_bytes(&init)));
    let (fin, fout) = (
        tmp.path("with.safetensors"),
        tmp.path("with.out.safetensors"),
    );
    write_raw(&fin, &with, &[("delta_softplus", "true")]);
    let (nin, nout) = (
        tmp.path("without.safetensors"),
        tmp.path("without.out.safetensors"),
    );
    write_raw(&nin, &small_inputs(), &[("delta_softplus", "true")]);
    let o = ss2d(&["scan", p(&fin), p(&fout), "--return-last-state", "true"]);
    assert_ok(&o, "with initial_state");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_ok(&ss2d(&["scan", p(&nin), p(&nout)]), "without");
    let got = TensorFile::open(&fout).unwrap();
    let without = TensorFile::open(&nout).unwrap();

    // The scalar reference on the same tensors.
    let src = TensorFile::open(&fin).unwrap();
    let t = |n: &str| src.tensor(n).unwrap().data().to_vec();
    let (u, delta, a, b, c, d) = (t("u"), t("delta"), t("A"), t("B"), t("C"), t("D"));
    let shape = ss2d_core::ScanShape {
        batch: 1,
        dim: 3,
        seqlen: 4,
        dstate: 2,
        b: ss2d_core::BcLayout::Constant,
        c: ss2d_core::BcLayout::Constant,
        layout: ss2d_core::Layout::ChannelFirst,
    };
    let args = ss2d_core::ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &b,
        c: &c,
        d_skip: Some(&d),
        z: None,
        delta_bias: None,
        delta_softplus: true,
        initial_state: Some(&init),
    };
    let (mut out, mut state) = (vec![0.0f32; 12], vec![0.0f32; 6]);
    ss2d_core::reference::selective_scan::<f32>(
        &shape,
        &ss2d_core::Walk::forward(4),
        &args,
        &mut out,
        Some(&mut state),
    )
    .unwrap();
    let g = got.tensor("out").unwrap();
    assert_close("out with initial_state", g.data(), &out, 1e-5);
    let gs = got.tensor("last_state").unwrap();
    assert_close("last_state with initial_state", gs.data(), &state, 1e-5);
    let w = without.tensor("out").unwrap();
    assert!(
        g.data()
            .iter()
            .zip(w.data())
            .any(|(x, y)| (x - y).abs() > 1e-3),
        "initial_state had no effect"
    );
}

/// Shape errors name the tensor that disagrees with the others: `A` when `B` and `C` agree on
/// N against it, `B` when `A` and `C` agree, `initial_state` against `u` and `A`.
#[test]
fn scan_shape_errors_blame_the_disagreeing_tensor() {
    let tmp = TempDir::new("blame");
    let outd = TempDir::new("blame-out");
    let with = |name: &'static str, shape: Vec<usize>| {
        let mut v = small_inputs();
        v.retain(|t| t.0 != name);
        let n: usize = shape.iter().product();
        v.push((name, "F32", shape, f32_bytes(&vec![-0.5; n])));
        v
    };
    let cases: [(&'static str, Vec<usize>, &[&str]); 3] = [
        (
            "A",
            vec![3, 5],
            &["tensor `A` has shape (3, 5)", "expected (3, 2)", "N = 2"],
        ),
        (
            "B",
            vec![3, 5],
            &["tensor `B` has shape (3, 5)", "expected (3, 2)"],
        ),
        (
            "initial_state",
            vec![1, 3, 5],
            &[
                "tensor `initial_state` has shape (1, 3, 5)",
                "expected (1, 3, 2)",
            ],
        ),
    ];
    for (name, shape, needles) in cases {
        let f = tmp.path(&format!("{name}.safetensors"));
        write_raw(&f, &with(name, shape), &[]);
        expect_failure(&f, &outd, needles);
    }
}

/// Tensors `ss2d scan` does not read are allowed and named in one note on stderr (a misspelled
/// input does not pass unnoticed).
#[test]
fn scan_notes_unused_tensors_in_one_line() {
    let tmp = TempDir::new("unused");
    let mut v = small_inputs();
    v.push(("initial_stat", "F32", vec![1, 3, 2], f32_bytes(&[0.0; 6])));
    v.push(("expected", "F32", vec![2], f32_bytes(&[0.0; 2])));
    let (f, out) = (tmp.path("in.safetensors"), tmp.path("out.safetensors"));
    write_raw(&f, &v, &[]);
    let o = ss2d(&["scan", p(&f), p(&out)]);
    assert_ok(&o, "unused tensors");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("note: ") && err.ends_with('\n'), "{err:?}");
    for n in [
        "`initial_stat`",
        "`expected`",
        "does not read",
        "in.safetensors",
    ] {
        assert!(err.contains(n), "{err:?} lacks {n}");
    }
    assert!(out.exists());
}
