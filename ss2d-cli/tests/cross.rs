//! End-to-end tests of `ss2d cross-scan` / `ss2d cross-merge` (golden data, flags over
//! metadata, thread counts, the reference path, hostile inputs) and of `ss2d bench --op ss2d`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};

use ss2d_cli::io::TensorFile;

mod common;
use common::*;

fn golden_cross_files() -> Vec<PathBuf> {
    let v = golden_cases("cross_scan");
    assert_eq!(v.len(), 17, "golden cross_scan files");
    v
}

/// Runs `ss2d <cmd> IN OUT <extra>` and returns the output tensor `name` (shape, data).
fn run_cross(
    tmp: &TempDir,
    cmd: &str,
    input: &Path,
    extra: &[&str],
    name: &str,
) -> (Vec<usize>, Vec<f32>) {
    static N: AtomicU64 = AtomicU64::new(0);
    let out = tmp.path(&format!(
        "o{}.safetensors",
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut args = vec![cmd, p(input), p(&out)];
    args.extend_from_slice(extra);
    let o = ss2d(&args);
    assert_ok(&o, &format!("{cmd} {} {extra:?}", input.display()));
    let f = TensorFile::open(&out).unwrap();
    let t = f.tensor(name).unwrap();
    (t.shape().to_vec(), t.data().to_vec())
}

/// Every golden file: `xs` bitwise, `y` within 1e-6 x max(1, max|ref|); the same for every
/// thread count and for the reference path (bitwise: same permutation, same addition order).
#[test]
fn golden_cross_scan_and_merge() {
    let tmp = TempDir::new("golden");
    for f in golden_cross_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let golden = TensorFile::open(&f).unwrap();
        let xs = golden.tensor("xs").unwrap();
        let y = golden.tensor("y").unwrap();

        let (shape, data) = run_cross(&tmp, "cross-scan", &f, &[], "xs");
        if name == "cs1b1_scans1_cf_cf.safetensors" {
            // Upstream's torch path returns this one (one-by-one unidi) as (B, 4, C*H, W)
            // = (2, 4, 15, 7): the same elements in the same order as the documented
            // (B, 4, C, L), which is what we write.
            assert_eq!(xs.shape(), [2, 4, 15, 7], "{name}: golden quirk changed");
            assert_eq!(shape, [2, 4, 3, 35], "{name}: xs shape");
        } else {
            assert_eq!(shape, xs.shape(), "{name}: xs shape");
        }
        assert_eq!(bits(&data), bits(xs.data()), "{name}: xs not bitwise equal");
        for extra in [
            &["--threads", "1"][..],
            &["--threads", "3"][..],
            &["--reference"][..],
        ] {
            let (s2, d2) = run_cross(&tmp, "cross-scan", &f, extra, "xs");
            assert_eq!(
                (s2, bits(&d2)),
                (shape.clone(), bits(&data)),
                "{name} {extra:?}"
            );
        }

        let (shape, data) = run_cross(&tmp, "cross-merge", &f, &[], "y");
        assert_eq!(shape, y.shape(), "{name}: y shape");
        let max_ref = y.data().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let tol = 1e-6 * max_ref.max(1.0);
        for (i, (a, b)) in data.iter().zip(y.data()).enumerate() {
            assert!((a - b).abs() <= tol, "{name}: y[{i}] = {a} vs golden {b}");
        }
        for extra in [
            &["--threads", "1"][..],
            &["--threads", "3"][..],
            &["--reference"][..],
        ] {
            let (s2, d2) = run_cross(&tmp, "cross-merge", &f, extra, "y");
            assert_eq!(
                (s2, bits(&d2)),
                (shape.clone(), bits(&data)),
                "{name} {extra:?}"
            );
        }

        // The output records the flags that applied.
        let out = tmp.path("meta.safetensors");
        assert_ok(&ss2d(&["cross-scan", p(&f), p(&out)]), "meta");
        let o = TensorFile::open(&out).unwrap();
        for k in [
            "in_channel_first",
            "out_channel_first",
            "one_by_one",
            "scans",
        ] {
            assert_eq!(o.metadata().get(k), golden.metadata().get(k), "{name}: {k}");
        }
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.731).sin()).collect()
}

/// Without metadata the defaults are upstream's (true, true, false, 0); flags win over metadata.
#[test]
fn flags_and_defaults() {
    let tmp = TempDir::new("flags");
    let g = golden_dir().join("cross_scan/cs_scans0_cf_cf.safetensors");
    let golden = TensorFile::open(&g).unwrap();
    let x = golden.tensor("x").unwrap();
    let ys = golden.tensor("ys").unwrap();

    // Same tensors, no metadata: the defaults reproduce the golden (cross2d, cf, cf).
    let bare = tmp.path("bare.safetensors");
    write_raw(
        &bare,
        &[
            ("x", "F32", x.shape().to_vec(), f32_bytes(x.data())),
            ("ys", "F32", ys.shape().to_vec(), f32_bytes(ys.data())),
        ],
        &[],
    );
    let (_, xs) = run_cross(&tmp, "cross-scan", &bare, &[], "xs");
    assert_eq!(bits(&xs), bits(golden.tensor("xs").unwrap().data()));
    let (_, y) = run_cross(&tmp, "cross-merge", &bare, &[], "y");
    let (_, yg) = run_cross(&tmp, "cross-merge", &g, &[], "y");
    assert_eq!(bits(&y), bits(&yg));

    // Flags that repeat the metadata change nothing.
    let same = [
        "--in-channel-first",
        "true",
        "--out-channel-first",
        "true",
        "--one-by-one",
        "false",
        "--scans",
        "cross2d",
    ];
    let (_, xs2) = run_cross(&tmp, "cross-scan", &g, &same, "xs");
    assert_eq!(bits(&xs2), bits(&xs));

    // Flags win: unidi on a cross2d file differs from the golden, equals the reference.
    let (s, k) = run_cross(&tmp, "cross-scan", &g, &["--scans", "1"], "xs");
    let (_, r) = run_cross(
        &tmp,
        "cross-scan",
        &g,
        &["--scans", "1", "--reference"],
        "xs",
    );
    assert_eq!(s, [2, 4, 3, 35]);
    assert_ne!(bits(&k), bits(&xs));
    assert_eq!(bits(&k), bits(&r));
    // unidi: every direction is the row-major sequence.
    for b in 0..2 {
        for kk in 0..4 {
            let seq = &k[(b * 4 + kk) * 105..(b * 4 + kk + 1) * 105];
            assert_eq!(seq, &x.data()[b * 105..(b + 1) * 105]);
        }
    }

    // A layout flag reinterprets the shape: (2, 3, 5, 7) channel-last is B=2, H=3, W=5, C=7.
    let (s, k) = run_cross(
        &tmp,
        "cross-scan",
        &g,
        &["--in-channel-first", "false"],
        "xs",
    );
    assert_eq!(s, [2, 4, 7, 15]);
    let (_, r) = run_cross(
        &tmp,
        "cross-scan",
        &g,
        &["--in-channel-first", "false", "--reference"],
        "xs",
    );
    assert_eq!(bits(&k), bits(&r));
    let (s, _) = run_cross(
        &tmp,
        "cross-scan",
        &g,
        &["--out-channel-first", "false"],
        "xs",
    );
    assert_eq!(s, [2, 35, 4, 3]);

    // Merge: one-by-one keeps the four directions apart; their sum is the summed merge.
    let (s, k) = run_cross(&tmp, "cross-merge", &g, &["--one-by-one", "true"], "y");
    assert_eq!(s, [2, 4, 3, 35]);
    for b in 0..2 {
        for i in 0..105 {
            let d = |kk: usize| k[(b * 4 + kk) * 105 + i];
            let sum = (d(0) + d(2)) + (d(1) + d(3));
            assert_eq!(sum.to_bits(), yg[b * 105 + i].to_bits());
        }
    }
    for mode in ["0", "1", "2"] {
        for layout in ["true", "false"] {
            let extra = ["--scans", mode, "--in-channel-first", layout];
            let (_, k) = run_cross(&tmp, "cross-merge", &g, &extra, "y");
            let mut extra_r = extra.to_vec();
            extra_r.push("--reference");
            let (_, r) = run_cross(&tmp, "cross-merge", &g, &extra_r, "y");
            assert_eq!(bits(&k), bits(&r), "merge {extra:?}");
        }
    }

    // Larger random cases on several threads equal the reference bitwise. (3, 4, 9, 4, 13) is
    // (B, 4, C=9, H=4, W=13) channel-first and (B, H=4, W=9, 4, C=13) channel-last; unknown
    // metadata and extra tensors are ignored.
    let big = tmp.path("big.safetensors");
    let n = 3 * 4 * 9 * 4 * 13;
    write_raw(
        &big,
        &[
            ("x", "F32", vec![3, 4, 9, 4, 13], f32_bytes(&ramp(n))),
            ("ys", "F32", vec![3, 4, 9, 4, 13], f32_bytes(&ramp(n))),
            ("other", "F32", vec![2], f32_bytes(&[1.0, 2.0])),
        ],
        &[("unrelated", "x")],
    );
    for extra in [
        &["--scans", "0"][..],
        &["--scans", "1", "--in-channel-first", "false"][..],
        &["--scans", "2", "--out-channel-first", "false"][..],
        &[
            "--in-channel-first",
            "false",
            "--out-channel-first",
            "false",
        ][..],
    ] {
        let mut a = extra.to_vec();
        a.extend(["--one-by-one", "true", "--threads", "4"]);
        let (_, k) = run_cross(&tmp, "cross-scan", &big, &a, "xs");
        let mut a = extra.to_vec();
        a.extend(["--one-by-one", "true", "--reference"]);
        let (_, r) = run_cross(&tmp, "cross-scan", &big, &a, "xs");
        assert_eq!(bits(&k), bits(&r), "scan {extra:?}");
        let mut a = extra.to_vec();
        a.extend(["--threads", "4"]);
        let (_, k) = run_cross(&tmp, "cross-merge", &big, &a, "y");
        let mut a = extra.to_vec();
        a.push("--reference");
        let (_, r) = run_cross(&tmp, "cross-merge", &big, &a, "y");
        assert_eq!(bits(&k), bits(&r), "merge {extra:?}");
    }
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
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
}

/// Runs `ss2d <cmd> IN OUT <extra>` expecting failure: status 1, one stderr line naming the
/// problem, no OUT and nothing else left in OUT's directory.
fn expect_failure(cmd: &str, input: &Path, extra: &[&str], needles: &[&str]) {
    let outd = TempDir::new("fail-out");
    let out = outd.path("out.safetensors");
    let mut args = vec![cmd, p(input), p(&out)];
    args.extend_from_slice(extra);
    let o = ss2d(&args);
    check_failure(&o, needles);
    assert!(!out.exists(), "OUT was created ({cmd} {extra:?})");
    assert!(outd.entries().is_empty(), "files left behind");
}

#[test]
fn hostile_inputs() {
    let tmp = TempDir::new("hostile");
    let g = golden_dir().join("cross_scan/cs_scans0_cf_cf.safetensors");
    let g1 = golden_dir().join("cross_scan/cs1b1_scans0_cf_cf.safetensors");
    let x = ramp(2 * 3 * 5 * 7);
    let xb = f32_bytes(&x);

    for cmd in ["cross-scan", "cross-merge"] {
        expect_failure(cmd, &tmp.path("missing.safetensors"), &[], &["missing"]);
        expect_failure(cmd, &tmp.0, &[], &[]);
        // Bad flag values and scans=3.
        expect_failure(cmd, &g, &["--scans", "3"], &["scans=3", "not implemented"]);
        expect_failure(cmd, &g, &["--scans=-1"], &["expected 0"]);
        expect_failure(cmd, &g, &["--scans", "4"], &["expected 0"]);
        expect_failure(cmd, &g, &["--in-channel-first", "yes"], &["yes"]);
        expect_failure(cmd, &g, &["--one-by-one"], &[]);
        expect_failure(cmd, &g, &["--threads", "0"], &["threads"]);
        expect_failure(cmd, &g, &["--frobnicate"], &["frobnicate"]);
    }
    // Missing tensor.
    let only_ys = tmp.path("only_ys.safetensors");
    write_raw(
        &only_ys,
        &[("ys", "F32", vec![1, 4, 1, 5, 7], f32_bytes(&ramp(140)))],
        &[],
    );
    expect_failure("cross-scan", &only_ys, &[], &["`x`"]);
    let only_x = tmp.path("only_x.safetensors");
    write_raw(&only_x, &[("x", "F32", vec![2, 3, 5, 7], xb.clone())], &[]);
    expect_failure("cross-merge", &only_x, &[], &["`ys`"]);

    // Wrong ranks.
    let r3 = tmp.path("r3.safetensors");
    write_raw(
        &r3,
        &[
            ("x", "F32", vec![6, 5, 7], xb.clone()),
            ("ys", "F32", vec![4, 6, 35], f32_bytes(&ramp(4 * 210))),
        ],
        &[],
    );
    expect_failure(
        "cross-scan",
        &r3,
        &[],
        &["`x`", "(6, 5, 7)", "(B, C, H, W)"],
    );
    expect_failure(
        "cross-merge",
        &r3,
        &[],
        &["`ys`", "(4, 6, 35)", "(B, 4, C, H, W)"],
    );
    // Rank 5 without one_by_one, rank 4 with it.
    expect_failure(
        "cross-scan",
        &g1,
        &["--one-by-one", "false"],
        &["(B, C, H, W)"],
    );
    expect_failure(
        "cross-scan",
        &g,
        &["--one-by-one", "true"],
        &["(B, 4, C, H, W)"],
    );
    // The direction axis must be 4.
    let k3 = tmp.path("k3.safetensors");
    write_raw(
        &k3,
        &[
            ("x", "F32", vec![2, 3, 5, 7, 1], xb.clone()),
            ("ys", "F32", vec![1, 3, 2, 5, 7], xb.clone()),
        ],
        &[("one_by_one", "true")],
    );
    expect_failure(
        "cross-scan",
        &k3,
        &["--in-channel-first", "false"],
        &["not 4"],
    );
    expect_failure("cross-scan", &k3, &[], &["not 4"]);
    expect_failure("cross-merge", &k3, &[], &["not 4"]);

    // Bad metadata.
    for (key, val, needle) in [
        ("scans", "3", "scans"),
        ("scans", "many", "many"),
        ("in_channel_first", "yes", "in_channel_first"),
        ("out_channel_first", "1", "out_channel_first"),
        ("one_by_one", "", "one_by_one"),
    ] {
        let f = tmp.path("meta.safetensors");
        write_raw(
            &f,
            &[
                ("x", "F32", vec![2, 3, 5, 7], xb.clone()),
                ("ys", "F32", vec![2, 4, 3, 5, 7], f32_bytes(&ramp(840))),
            ],
            &[(key, val)],
        );
        for cmd in ["cross-scan", "cross-merge"] {
            expect_failure(cmd, &f, &[], &[needle]);
        }
        // A flag given on the command line wins over a bad metadata value.
        let flag = format!("--{}", key.replace('_', "-"));
        let good = match key {
            "scans" => "0",
            "one_by_one" => "false",
            _ => "true",
        };
        let out = tmp.path("ok.safetensors");
        assert_ok(
            &ss2d(&["cross-scan", p(&f), p(&out), &flag, good]),
            "flag over bad metadata",
        );
    }

    // Wrong dtype, data shorter than the shape, truncated file, not a safetensors file.
    let f64f = tmp.path("f64.safetensors");
    write_raw(
        &f64f,
        &[("x", "F64", vec![2, 3, 5, 7], vec![0u8; 8 * 210])],
        &[],
    );
    expect_failure("cross-scan", &f64f, &[], &["F64"]);
    let short = tmp.path("short.safetensors");
    write_raw(
        &short,
        &[("x", "F32", vec![2, 3, 5, 7], xb[..400].to_vec())],
        &[],
    );
    expect_failure("cross-scan", &short, &[], &[]);
    let trunc = tmp.path("trunc.safetensors");
    let bytes = std::fs::read(&g).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() - 10]).unwrap();
    expect_failure("cross-scan", &trunc, &[], &[]);
    let junk = tmp.path("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file at all").unwrap();
    expect_failure("cross-merge", &junk, &[], &[]);

    // Zero-sized but huge dimensions: the size products must not overflow into a panic.
    let zero = tmp.path("zero.safetensors");
    let huge = 1usize << 40;
    write_raw(
        &zero,
        &[
            ("x", "F32", vec![0, huge, huge, huge], vec![]),
            ("ys", "F32", vec![0, 4, huge, huge, huge], vec![]),
        ],
        &[],
    );
    for cmd in ["cross-scan", "cross-merge"] {
        expect_failure(cmd, &zero, &[], &["overflow"]);
    }
    // A valid empty problem is fine.
    let empty = tmp.path("empty.safetensors");
    write_raw(
        &empty,
        &[
            ("x", "F32", vec![0, 3, 5, 7], vec![]),
            ("ys", "F32", vec![2, 4, 3, 0, 7], vec![]),
        ],
        &[],
    );
    let (s, d) = run_cross(&tmp, "cross-scan", &empty, &[], "xs");
    assert_eq!((s, d.len()), (vec![0, 4, 3, 35], 0));
    let (s, d) = run_cross(&tmp, "cross-merge", &empty, &[], "y");
    assert_eq!((s, d.len()), (vec![2, 3, 0], 0));
    // Empty but with a huge batch: returns at once, on every path.
    let wide = tmp.path("wide.safetensors");
    write_raw(
        &wide,
        &[
            ("x", "F32", vec![1 << 40, 1, 0, 1], vec![]),
            ("ys", "F32", vec![1 << 40, 4, 1, 0, 1], vec![]),
        ],
        &[],
    );
    for extra in [&[][..], &["--reference"][..]] {
        let t = std::time::Instant::now();
        let (s, _) = run_cross(&tmp, "cross-scan", &wide, extra, "xs");
        assert_eq!(s, [1 << 40, 4, 1, 0]);
        let (s, _) = run_cross(&tmp, "cross-merge", &wide, extra, "y");
        assert_eq!(s, [1 << 40, 1, 0]);
        assert!(
            t.elapsed().as_secs() < 10,
            "empty problem took {:?}",
            t.elapsed()
        );
    }

    // Unwritable output: error, nothing left behind.
    let o = ss2d(&[
        "cross-scan",
        p(&g),
        p(&tmp.path("no/such/dir/out.safetensors")),
    ]);
    check_failure(&o, &[]);
    let o = ss2d(&["cross-merge", p(&g), p(&tmp.0)]);
    check_failure(&o, &[]);
}

#[test]
fn bench_ss2d_json() {
    let o = ss2d(&[
        "bench",
        "--op",
        "ss2d",
        "--shape",
        "B=1,D=16,H=5,W=7,N=2,R=1",
        "--json",
    ]);
    assert_ok(&o, "bench --op ss2d");
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want_keys = vec![
        "op", "shape", "mode", "layout", "threads", "isa", "fused", "unfused", "speedup", "peak",
    ];
    want_keys.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want_keys);
    assert_eq!(v["op"], "ss2d");
    // The roofline of the fused scan against the measured peak.
    let peak = v["peak"]["flops_per_s_per_core"].as_f64().unwrap();
    assert!(peak > 1e6, "{peak}");
    let limit = v["fused"]["limit_s"].as_f64().unwrap();
    let t = v["fused"]["median_s"].as_f64().unwrap();
    assert!((v["fused"]["roofline"].as_f64().unwrap() * t / limit - 1.0).abs() < 1e-9);
    let shape: BTreeMap<String, u64> = serde_json::from_value(v["shape"].clone()).unwrap();
    let want: BTreeMap<String, u64> = [("B", 1), ("D", 16), ("H", 5), ("W", 7), ("N", 2), ("R", 1)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(shape, want);
    assert_eq!(v["mode"], "cross2d");
    assert_eq!(v["layout"], "cf");
    assert_eq!(v["threads"], 1);
    assert_eq!(
        v["isa"],
        ss2d_std::cpu::level_from_env().expect("SS2D_ISA").name()
    );
    let elements = 4.0 * 16.0 * 35.0 * 2.0;
    let mut medians = [0.0; 2];
    for (i, k) in ["fused", "unfused"].into_iter().enumerate() {
        let t = v[k]["median_s"].as_f64().unwrap();
        let e = v[k]["elements_per_s"].as_f64().unwrap();
        assert!(t > 0.0 && e > 0.0, "{k}: {t} {e}");
        assert!((e * t / elements - 1.0).abs() < 1e-6, "{k}: elements/s");
        medians[i] = t;
    }
    let speedup = v["speedup"].as_f64().unwrap();
    assert!((speedup - medians[1] / medians[0]).abs() <= 1e-9 * speedup);

    // Options, several shapes, the table form.
    let o = ss2d(&[
        "bench",
        "--op",
        "ss2d",
        "--shape",
        "B=2,D=8,H=3,W=4,N=16,R=2",
        "--shape",
        "D=4,H=1,W=9,N=1,R=1",
        "--mode",
        "bidi",
        "--layout",
        "cl",
        "--threads",
        "2",
        "--reps",
        "2",
        "--json",
    ]);
    assert_ok(&o, "bench two shapes");
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (v["mode"].as_str(), v["layout"].as_str()),
            (Some("bidi"), Some("cl"))
        );
        assert_eq!(v["threads"], 2);
    }
    let o = ss2d(&[
        "bench",
        "--op",
        "ss2d",
        "--shape",
        "D=8,H=3,W=4,N=4,R=1",
        "--mode",
        "unidi",
        "--reps",
        "1",
    ]);
    assert_ok(&o, "bench table");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("B=1,D=8,H=3,W=4,N=4,R=1"), "{text}");
    assert!(text.contains("unidi") && text.contains("fused"), "{text}");

    // Usage errors: one line, nothing on stdout.
    for args in [
        &["bench", "--op", "ss2d", "--shape", "D=8,L=16,N=2"][..],
        &["bench", "--op", "ss2d", "--shape", "D=8,H=4,W=4,N=2"][..],
        &["bench", "--op", "ss2d", "--shape", "D=8,H=4,W=4,N=300,R=1"][..],
        &[
            "bench",
            "--op",
            "ss2d",
            "--shape",
            "B=99999,D=99999,H=9999,W=9999,N=16,R=6",
        ][..],
        &["bench", "--op", "ss2d", "--mode", "diagonal"][..],
        &["bench", "--op", "ss2d", "--layout", "xy"][..],
        &["bench", "--op", "scan", "--mode", "bidi"][..],
        &[
            "bench",
            "--op",
            "scan",
            "--shape",
            "B=1,D=16,H=5,W=7,N=2,R=1",
        ][..],
    ] {
        check_failure(&ss2d(args), &[]);
    }
}
