//! Hostile inputs for the `ss2d` binary beyond `cli.rs`: headers that lie about offsets and
//! shapes, overflowing shapes, every unsupported dtype, wrong ranks and lengths, missing tensors,
//! bad `ss2d layer` configurations, unwritable outputs. Each gives exit status 1, one
//! `ss2d: error: ...` line naming the problem and no output file. Valid but unusual inputs
//! (zero-length sequences, 1x1 maps, empty grids, NaN and infinity in the data) give the
//! defined results documented in `ss2d-core`'s crate docs ("Errors and numerics"). Also the
//! ISA check: a build above the CPU's level refuses to run with an error, not SIGILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ss2d_cli::io::TensorFile;
use ss2d_core::SimdLevel;

mod common;
use common::*;

/// The smallest v05_noz golden layer (channel-first, d_model 16, d_state 1, 2 x 16 x 5 x 7).
const LAYER: &str = "ss2d/ss2d_v05noz_ds1_r1_cf_d16_b2_5x7.safetensors";

/// Runs `ss2d` with `args`, killing it after `limit` (then `None`).
fn run_for(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Option<Output> {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn ss2d");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ss2d(args: &[&str]) -> Output {
    run_for(args, &[], Duration::from_secs(120)).expect("ss2d did not finish within 120 s")
}

/// Status 1, nothing on stdout, exactly one `ss2d: error: ` line on stderr containing every
/// needle.
fn check_failure(what: &str, o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: status; stderr: {err}");
    assert!(o.stdout.is_empty(), "{what}: stdout not empty");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.starts_with("ss2d: error: "), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: stderr {err:?} lacks {n:?}");
    }
}

fn check_ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what}: status {:?}; stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `ss2d <cmd> IN OUT [extra]` and expects a failure naming `needles`, with no OUT and
/// nothing new in OUT's directory.
fn expect_failure(cmd: &str, input: &Path, extra: &[&str], needles: &[&str]) {
    let outd = TempDir::new("out");
    let out = outd.path("out.safetensors");
    let mut args = vec![cmd, p(input), p(&out)];
    args.extend_from_slice(extra);
    let o = ss2d(&args);
    check_failure(&format!("{cmd} {}", input.display()), &o, needles);
    assert!(!out.exists(), "{}: OUT was created", input.display());
    assert!(
        outd.entries().is_empty(),
        "files left: {:?}",
        outd.entries()
    );
}

type Raw = (String, String, Vec<u64>, Vec<u8>);

fn raw(name: &str, dtype: &str, shape: &[u64], bytes: Vec<u8>) -> Raw {
    (name.to_string(), dtype.to_string(), shape.to_vec(), bytes)
}

/// Serializes tensors and metadata by hand, laying the data out in order (offsets from the
/// data), or with `offsets` overriding them per tensor. Shapes are `u64` so they can lie.
fn file_bytes(tensors: &[Raw], meta: &[(&str, &str)], offsets: &[Option<(u64, u64)>]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !meta.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = meta
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut data = Vec::new();
    for (i, (name, dtype, shape, bytes)) in tensors.iter().enumerate() {
        let start = data.len() as u64;
        data.extend_from_slice(bytes);
        let (s, e) = offsets
            .get(i)
            .copied()
            .flatten()
            .unwrap_or((start, data.len() as u64));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [s, e]}),
        );
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend(h);
    file.extend(data);
    file
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A header given as raw JSON text, then `data`.
fn json_file(json: &str, data: &[u8]) -> Vec<u8> {
    let mut h = json.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend(h);
    file.extend(data);
    file
}

/// A small valid scan input (B=1, D=3, L=4, N=2, constant B/C, D).
fn scan_inputs() -> Vec<Raw> {
    let seq: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    vec![
        raw("u", "F32", &[1, 3, 4], f32_bytes(&seq)),
        raw("delta", "F32", &[1, 3, 4], f32_bytes(&seq)),
        raw(
            "A",
            "F32",
            &[3, 2],
            f32_bytes(&[-1.0, -2.0, -1.0, -2.0, -1.0, -2.0]),
        ),
        raw("B", "F32", &[3, 2], f32_bytes(&[0.5; 6])),
        raw("C", "F32", &[3, 2], f32_bytes(&[0.25; 6])),
        raw("D", "F32", &[3], f32_bytes(&[1.0; 3])),
    ]
}

fn set(t: &mut Vec<Raw>, r: Raw) {
    match t.iter_mut().find(|x| x.0 == r.0) {
        Some(x) => *x = r,
        None => t.push(r),
    }
}

#[test]
fn scan_headers_that_lie_about_offsets() {
    let tmp = TempDir::new("offsets");
    let t = scan_inputs();
    let n = t.len();
    let mut cases: Vec<(&str, Vec<u8>, Vec<&str>)> = Vec::new();
    // `u` claims bytes past the end of the file.
    let mut off = vec![None; n];
    off[0] = Some((0, 4000));
    cases.push(("past_end", file_bytes(&t, &[], &off), vec!["`u`"]));
    // `u` and `delta` overlap.
    let mut off = vec![None; n];
    off[1] = Some((0, 48));
    cases.push(("overlap", file_bytes(&t, &[], &off), vec!["data_offsets"]));
    // Reversed range.
    let mut off = vec![None; n];
    off[0] = Some((48, 0));
    cases.push(("reversed", file_bytes(&t, &[], &off), vec!["`u`"]));
    // Offsets near u64::MAX.
    let mut off = vec![None; n];
    off[0] = Some((u64::MAX - 47, u64::MAX));
    cases.push(("huge_offsets", file_bytes(&t, &[], &off), vec![]));
    // A gap before the last tensor (data not contiguous).
    let mut off = vec![None; n];
    let last = file_bytes(&t, &[], &[]).len() as u64; // only to get a big number
    off[n - 1] = Some((last, last + 12));
    cases.push(("gap", file_bytes(&t, &[], &off), vec![]));
    // Extra bytes after the last tensor.
    let mut b = file_bytes(&t, &[], &[]);
    b.extend([0u8; 7]);
    cases.push(("trailing", b, vec!["trailing"]));
    // The header-length field says less than the JSON (cut mid-object).
    let mut b = file_bytes(&t, &[], &[]);
    let hl = u64::from_le_bytes(b[..8].try_into().unwrap());
    b[..8].copy_from_slice(&(hl / 2).to_le_bytes());
    cases.push(("short_header", b, vec!["JSON"]));
    // The header-length field says more than the file (but less than 100 MB).
    let mut b = file_bytes(&t, &[], &[]);
    b[..8].copy_from_slice(&1_000_000u64.to_le_bytes());
    cases.push(("long_header", b, vec!["header length"]));
    // Not UTF-8.
    let mut b = json_file("{\"u\":1}", &[]);
    b[9] = 0xff;
    cases.push(("not_utf8", b, vec!["UTF-8"]));
    // A header that does not start with `{`.
    cases.push(("not_object", json_file("[1,2,3]", &[]), vec![]));
    // Negative and fractional dimensions.
    cases.push((
        "negative_dim",
        json_file(
            r#"{"u":{"dtype":"F32","shape":[-1,3,4],"data_offsets":[0,48]}}"#,
            &[0; 48],
        ),
        vec!["JSON"],
    ));
    cases.push((
        "fractional_dim",
        json_file(
            r#"{"u":{"dtype":"F32","shape":[1.5,3,4],"data_offsets":[0,48]}}"#,
            &[0; 48],
        ),
        vec!["JSON"],
    ));
    // An unknown dtype string.
    cases.push((
        "unknown_dtype",
        json_file(
            r#"{"u":{"dtype":"F31","shape":[1,3,4],"data_offsets":[0,48]}}"#,
            &[0; 48],
        ),
        vec!["JSON"],
    ));
    // Duplicate tensor names in the JSON object.
    cases.push((
        "duplicate",
        json_file(
            r#"{"u":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ),
        vec![],
    ));
    // An empty header: no tensors at all.
    cases.push(("no_tensors", json_file("{}", &[]), vec!["`u`", "missing"]));
    for (name, bytes, needles) in cases {
        let f = write(&tmp, &format!("{name}.safetensors"), &bytes);
        let mut needles = needles;
        needles.push(name);
        expect_failure("scan", &f, &[], &needles);
    }
}

#[test]
fn scan_overflowing_shapes_are_refused() {
    let tmp = TempDir::new("overflow");
    let big = 1u64 << 32;
    for (name, shape) in [
        ("u_overflow", vec![big, big, 2]),
        ("u_max", vec![u64::MAX, 1, 1]),
        ("u_isize", vec![1 << 62, 2, 2]),
    ] {
        let mut t = scan_inputs();
        set(&mut t, raw("u", "F32", &shape, vec![]));
        let f = write(
            &tmp,
            &format!("{name}.safetensors"),
            &file_bytes(&t, &[], &[]),
        );
        expect_failure("scan", &f, &[], &[name, "`u`"]);
    }
    // B's (B, G, N, L) product overflows while u is tiny.
    let mut t = scan_inputs();
    set(&mut t, raw("B", "F32", &[1, big, big, 4], vec![]));
    let f = write(&tmp, "b_overflow.safetensors", &file_bytes(&t, &[], &[]));
    expect_failure("scan", &f, &[], &["b_overflow", "`B`"]);
}

#[test]
fn scan_every_unsupported_dtype_is_named() {
    let tmp = TempDir::new("dtypes");
    for (tensor, dtype, width) in [
        ("A", "F16", 2),
        ("B", "BF16", 2),
        ("delta", "I32", 4),
        ("C", "U8", 1),
        ("D", "I64", 8),
        ("z", "F64", 8),
        ("delta_bias", "BOOL", 1),
        ("u", "F8_E4M3", 1),
    ] {
        let mut t = scan_inputs();
        let shape: Vec<u64> = match tensor {
            "A" | "B" | "C" => vec![3, 2],
            "D" | "delta_bias" => vec![3],
            _ => vec![1, 3, 4],
        };
        let n: u64 = shape.iter().product();
        set(
            &mut t,
            raw(tensor, dtype, &shape, vec![0; (n * width) as usize]),
        );
        let f = write(
            &tmp,
            &format!("{tensor}_{dtype}.safetensors"),
            &file_bytes(&t, &[], &[]),
        );
        expect_failure("scan", &f, &[], &[&format!("`{tensor}`"), dtype]);
    }
}

#[test]
fn scan_wrong_ranks_shapes_and_missing_tensors() {
    let tmp = TempDir::new("shapes");
    let z = |n: usize| f32_bytes(&vec![0.5; n]);
    let cases: Vec<(&str, Raw, Vec<&str>)> = vec![
        (
            "u_rank2",
            raw("u", "F32", &[3, 4], z(12)),
            vec!["`u`", "rank 2"],
        ),
        (
            "u_rank4",
            raw("u", "F32", &[1, 3, 4, 1], z(12)),
            vec!["`u`", "rank 4"],
        ),
        (
            "delta_shape",
            raw("delta", "F32", &[1, 4, 3], z(12)),
            vec!["`delta`", "(1, 4, 3)"],
        ),
        (
            "z_shape",
            raw("z", "F32", &[1, 3, 5], z(15)),
            vec!["`z`", "(1, 3, 5)"],
        ),
        (
            "bias_len",
            raw("delta_bias", "F32", &[4], z(4)),
            vec!["`delta_bias`", "(4,)"],
        ),
        (
            "a_rows",
            raw("A", "F32", &[4, 2], z(8)),
            vec!["`A`", "(4, 2)"],
        ),
        (
            "b_const_n",
            raw("B", "F32", &[3, 3], z(9)),
            vec!["`B`", "(3, 3)"],
        ),
        (
            "b_bnl_len",
            raw("B", "F32", &[1, 2, 5], z(10)),
            vec!["`B`", "(1, 2, 5)"],
        ),
        (
            "b_zero_groups",
            raw("B", "F32", &[1, 0, 2, 4], vec![]),
            vec!["`B`", "zero groups"],
        ),
        (
            "c_rank5",
            raw("C", "F32", &[1, 1, 1, 2, 4], z(8)),
            vec!["`C`", "rank 5"],
        ),
        (
            "c_rank1",
            raw("C", "F32", &[6], z(6)),
            vec!["`C`", "rank 1"],
        ),
        (
            "d_rank2",
            raw("D", "F32", &[3, 1], z(3)),
            vec!["`D`", "rank 2"],
        ),
        (
            "b_batch",
            raw("B", "F32", &[2, 1, 2, 4], z(16)),
            vec!["`B`", "(2, 1, 2, 4)"],
        ),
    ];
    for (name, r, needles) in cases {
        let mut t = scan_inputs();
        set(&mut t, r);
        let f = write(
            &tmp,
            &format!("{name}.safetensors"),
            &file_bytes(&t, &[], &[]),
        );
        expect_failure("scan", &f, &[], &needles);
    }
    for missing in ["delta", "A", "B", "C"] {
        let t: Vec<Raw> = scan_inputs()
            .into_iter()
            .filter(|r| r.0 != missing)
            .collect();
        let f = write(
            &tmp,
            &format!("no_{missing}.safetensors"),
            &file_bytes(&t, &[], &[]),
        );
        expect_failure("scan", &f, &[], &[&format!("`{missing}`"), "missing"]);
    }
    // A metadata flag that is not a boolean.
    let f = write(
        &tmp,
        "meta.safetensors",
        &file_bytes(&scan_inputs(), &[("return_last_state", "1")], &[]),
    );
    expect_failure("scan", &f, &[], &["return_last_state", "\"1\""]);
}

/// A zero-length sequence with a huge batch: `u` (2^40, 1, 0) holds no data, so the file is
/// a few hundred bytes. The scan must finish promptly (an empty `out`, or a clean error when
/// `last_state` of 2^40 elements is asked for), never spin over 2^40 empty work units or
/// allocate by the header's claim.
#[test]
fn scan_empty_sequence_with_huge_batch_finishes_promptly() {
    let tmp = TempDir::new("hugebatch");
    let outd = TempDir::new("hugebatch-out");
    let mut t = scan_inputs();
    set(&mut t, raw("u", "F32", &[1 << 40, 1, 0], vec![]));
    set(&mut t, raw("delta", "F32", &[1 << 40, 1, 0], vec![]));
    set(&mut t, raw("A", "F32", &[1, 2], f32_bytes(&[-1.0, -1.0])));
    set(&mut t, raw("B", "F32", &[1, 2], f32_bytes(&[1.0, 1.0])));
    set(&mut t, raw("C", "F32", &[1, 2], f32_bytes(&[1.0, 1.0])));
    t.retain(|r| r.0 != "D");
    let f = write(&tmp, "huge_batch.safetensors", &file_bytes(&t, &[], &[]));
    let out = outd.path("o.safetensors");
    let o = run_for(
        &["scan", p(&f), p(&out), "--threads", "1"],
        &[],
        Duration::from_secs(20),
    )
    .expect(
        "BUG: `ss2d scan` on a 400-byte file with u of shape (2^40, 1, 0) still runs after 20 s \
         (the core loops over batch x panels work units even though there are no positions)",
    );
    if o.status.success() {
        let r = TensorFile::open(&out).unwrap();
        assert_eq!(r.tensor("out").unwrap().shape(), &[1 << 40, 1, 0]);
    } else {
        check_failure("huge batch", &o, &[]);
    }
    // With the final state asked for: 2^40 x 2 elements cannot be allocated: a clean error.
    let o = run_for(
        &[
            "scan",
            p(&f),
            p(&out),
            "--threads",
            "1",
            "--return-last-state",
            "true",
        ],
        &[],
        Duration::from_secs(20),
    )
    .expect("BUG: still running after 20 s");
    check_failure("huge last_state", &o, &["last_state"]);
}

/// Valid but unusual scan inputs and their defined results.
#[test]
fn scan_valid_unusual_inputs() {
    let tmp = TempDir::new("unusual");
    let outd = TempDir::new("unusual-out");
    let run = |name: &str, t: &[Raw], extra: &[&str]| -> TensorFile {
        let f = write(
            &tmp,
            &format!("{name}.safetensors"),
            &file_bytes(t, &[], &[]),
        );
        let out = outd.path(&format!("{name}-out.safetensors"));
        let mut args = vec!["scan", p(&f), p(&out)];
        args.extend_from_slice(extra);
        check_ok(name, &ss2d(&args));
        TensorFile::open(&out).unwrap()
    };
    // L = 0: `out` (1, 3, 0); `last_state` is the initial state, zeros.
    let mut t = scan_inputs();
    set(&mut t, raw("u", "F32", &[1, 3, 0], vec![]));
    set(&mut t, raw("delta", "F32", &[1, 3, 0], vec![]));
    let r = run("empty_seq", &t, &["--return-last-state", "true"]);
    assert_eq!(r.tensor("out").unwrap().shape(), &[1, 3, 0]);
    let st = r.tensor("last_state").unwrap();
    assert_eq!(st.shape(), &[1, 3, 2]);
    assert!(st.data().iter().all(|&v| v == 0.0));
    // D = 0 channels: `out` (2, 0, 4).
    let t = vec![
        raw("u", "F32", &[2, 0, 4], vec![]),
        raw("delta", "F32", &[2, 0, 4], vec![]),
        raw("A", "F32", &[0, 2], vec![]),
        raw("B", "F32", &[2, 2, 4], f32_bytes(&[1.0; 16])),
        raw("C", "F32", &[0, 2], vec![]),
    ];
    let r = run("no_channels", &t, &[]);
    assert_eq!(r.tensor("out").unwrap().shape(), &[2, 0, 4]);
    // 1 x 1 x 1 with N = 1, no softplus (delta is the step): h = dt*u*B, y = C*h + D*u.
    let t = vec![
        raw("u", "F32", &[1, 1, 1], f32_bytes(&[2.0])),
        raw("delta", "F32", &[1, 1, 1], f32_bytes(&[0.5])),
        raw("A", "F32", &[1, 1], f32_bytes(&[-1.0])),
        raw("B", "F32", &[1, 1], f32_bytes(&[3.0])),
        raw("C", "F32", &[1, 1], f32_bytes(&[0.25])),
        raw("D", "F32", &[1], f32_bytes(&[1.0])),
    ];
    let r = run("one", &t, &[]);
    assert_eq!(
        r.tensor("out").unwrap().data(),
        &[0.25 * 0.5 * 2.0 * 3.0 + 2.0]
    );
    // NaN in u at (0, 1, 2): NaN in out for channel 1 from position 2 on, other channels
    // untouched; +inf in u at (0, 2, 0): channel 2 non-finite from position 0 on.
    let mut t = scan_inputs();
    let mut u: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let clean = run("clean", &t, &[]).tensor("out").unwrap().data().to_vec();
    u[4 + 2] = f32::NAN;
    u[8] = f32::INFINITY;
    set(&mut t, raw("u", "F32", &[1, 3, 4], f32_bytes(&u)));
    let r = run("nan", &t, &[]);
    let out = r.tensor("out").unwrap().data().to_vec();
    for l in 0..4 {
        assert_eq!(out[l].to_bits(), clean[l].to_bits(), "channel 0 changed");
        assert_eq!(
            out[4 + l].is_nan(),
            l >= 2,
            "channel 1 at {l}: {}",
            out[4 + l]
        );
        assert!(!out[8 + l].is_finite(), "channel 2 at {l}: {}", out[8 + l]);
    }
}

/// Writes the golden layer's module tensors and `input` (no `output`, no `debug.*`), with
/// `edit` applied to the tensors and `meta` overriding metadata (`None` value = remove).
fn layer_file(
    dir: &TempDir,
    name: &str,
    edit: &dyn Fn(&mut Vec<Raw>),
    meta: &[(&str, Option<&str>)],
) -> PathBuf {
    let g = TensorFile::open(golden_dir().join(LAYER)).unwrap();
    let mut t: Vec<Raw> = g
        .names()
        .filter(|n| !n.starts_with("debug.") && *n != "output")
        .map(|n| {
            let x = g.tensor(n).unwrap();
            let shape: Vec<u64> = x.shape().iter().map(|&d| d as u64).collect();
            raw(n, "F32", &shape, f32_bytes(x.data()))
        })
        .collect();
    edit(&mut t);
    let mut m: Vec<(String, String)> = [
        "d_model",
        "d_state",
        "ssm_ratio",
        "dt_rank",
        "d_conv",
        "conv_bias",
        "forward_type",
        "channel_first",
    ]
    .iter()
    .map(|k| (k.to_string(), g.metadata()[*k].clone()))
    .collect();
    for (k, v) in meta {
        m.retain(|(mk, _)| mk != k);
        if let Some(v) = v {
            m.push((k.to_string(), v.to_string()));
        }
    }
    let mref: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    write(
        dir,
        &format!("{name}.safetensors"),
        &file_bytes(&t, &mref, &[]),
    )
}

#[test]
fn layer_bad_configuration_values() {
    let tmp = TempDir::new("layercfg");
    let keep = |_: &mut Vec<Raw>| {};
    for (name, meta, needles) in [
        (
            "unknown_type",
            vec![("forward_type", Some("v99_fast"))],
            vec!["v99_fast"],
        ),
        (
            "even_dconv",
            vec![("d_conv", Some("4"))],
            vec!["d_conv", "4"],
        ),
        (
            "negative_ratio",
            vec![("ssm_ratio", Some("-1"))],
            vec!["ssm_ratio", "-1"],
        ),
        (
            "nan_ratio",
            vec![("ssm_ratio", Some("NaN"))],
            vec!["ssm_ratio"],
        ),
        (
            "tiny_ratio",
            vec![("ssm_ratio", Some("0.01"))],
            vec!["d_inner"],
        ),
        (
            "dstate_vs_alogs",
            vec![("d_state", Some("8"))],
            vec!["d_state", "8", "A_logs"],
        ),
        (
            "dstate_zero",
            vec![("d_state", Some("0"))],
            vec!["d_state", "0"],
        ),
        (
            "dstate_big",
            vec![("d_state", Some("300"))],
            vec!["d_state", "300"],
        ),
        ("dtrank_zero", vec![("dt_rank", Some("0"))], vec!["dt_rank"]),
        (
            "dtrank_vs_weight",
            vec![("dt_rank", Some("3"))],
            vec!["dt_rank", "3"],
        ),
        ("dmodel_zero", vec![("d_model", Some("0"))], vec!["d_model"]),
        (
            "dmodel_vs_weight",
            vec![("d_model", Some("8"))],
            vec!["A_logs", "(64, 1)"],
        ),
        (
            "dmodel_text",
            vec![("d_model", Some("sixteen"))],
            vec!["d_model", "sixteen"],
        ),
        (
            "dmodel_negative",
            vec![("d_model", Some("-16"))],
            vec!["d_model", "-16"],
        ),
        (
            "v0_channel_first",
            vec![("forward_type", Some("v0"))],
            vec!["v0"],
        ),
        (
            "cf_not_bool",
            vec![("channel_first", Some("yes"))],
            vec!["channel_first", "yes"],
        ),
        (
            "no_forward_type",
            vec![("forward_type", None)],
            vec!["forward_type"],
        ),
        (
            "no_channel_first",
            vec![("channel_first", None)],
            vec!["channel_first"],
        ),
        (
            "conv_bias_true",
            vec![("conv_bias", Some("true"))],
            vec!["conv2d.bias"],
        ),
    ] {
        let f = layer_file(&tmp, name, &keep, &meta);
        expect_failure("layer", &f, &[], &needles);
    }
    // Flags win over metadata and are checked the same way.
    let f = layer_file(&tmp, "flags", &keep, &[]);
    expect_failure("layer", &f, &["--forward-type", "v77"], &["v77"]);
    expect_failure("layer", &f, &["--d-conv", "2"], &["d_conv", "2"]);
    expect_failure("layer", &f, &["--ssm-ratio=-0.5"], &["ssm_ratio", "-0.5"]);
}

#[test]
fn layer_bad_tensors() {
    let tmp = TempDir::new("layertensors");
    type Edit = Box<dyn Fn(&mut Vec<Raw>)>;
    let drop_t = |name: &'static str| -> Edit { Box::new(move |t| t.retain(|r| r.0 != name)) };
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        ("no_alogs", drop_t("A_logs"), vec!["A_logs", "missing"]),
        ("no_input", drop_t("input"), vec!["`input`", "missing"]),
        (
            "no_out_proj",
            drop_t("out_proj.weight"),
            vec!["out_proj.weight"],
        ),
        (
            "f16_in_proj",
            Box::new(|t| set(t, raw("in_proj.weight", "F16", &[16, 16], vec![0; 512]))),
            vec!["in_proj.weight", "F16"],
        ),
        (
            "f64_input",
            Box::new(|t| set(t, raw("input", "F64", &[2, 16, 5, 7], vec![0; 8 * 1120]))),
            vec!["`input`", "F64"],
        ),
        (
            "xproj_rank",
            Box::new(|t| set(t, raw("x_proj_weight", "F32", &[12, 16], vec![0; 768]))),
            vec!["x_proj_weight"],
        ),
        (
            "ds_len",
            Box::new(|t| set(t, raw("Ds", "F32", &[63], vec![0; 252]))),
            vec!["Ds", "63"],
        ),
        (
            "extra_conv_bias",
            Box::new(|t| set(t, raw("conv2d.bias", "F32", &[16], vec![0; 64]))),
            vec!["conv2d.bias"],
        ),
        (
            "input_channels",
            Box::new(|t| set(t, raw("input", "F32", &[2, 15, 5, 7], vec![0; 4 * 1050]))),
            vec!["input", "15"],
        ),
        (
            "input_rank",
            Box::new(|t| set(t, raw("input", "F32", &[16, 5, 7], vec![0; 4 * 560]))),
            vec!["input"],
        ),
        (
            "input_overflow",
            Box::new(|t| set(t, raw("input", "F32", &[1 << 62, 16, 1 << 4, 1], vec![]))),
            vec!["input"],
        ),
    ];
    for (name, edit, needles) in cases {
        let f = layer_file(&tmp, name, edit.as_ref(), &[]);
        expect_failure("layer", &f, &[], &needles);
    }
}

/// Valid but unusual layer inputs: a 1x1 map, an empty grid, NaN in one batch item.
#[test]
fn layer_valid_unusual_inputs() {
    let tmp = TempDir::new("layerok");
    let outd = TempDir::new("layerok-out");
    let run = |name: &str, input: Vec<f32>, shape: [u64; 4]| -> Vec<f32> {
        let f = layer_file(
            &tmp,
            name,
            &|t| set(t, raw("input", "F32", &shape, f32_bytes(&input))),
            &[],
        );
        let out = outd.path(&format!("{name}-out.safetensors"));
        check_ok(name, &ss2d(&["layer", p(&f), p(&out), "--threads", "2"]));
        let r = TensorFile::open(&out).unwrap();
        let o = r.tensor("output").unwrap();
        let want: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        assert_eq!(o.shape(), &want[..], "{name}");
        o.data().to_vec()
    };
    let one = run(
        "one_by_one",
        (0..16).map(|i| i as f32 / 8.0 - 1.0).collect(),
        [1, 16, 1, 1],
    );
    assert!(one.iter().all(|v| v.is_finite()));
    assert!(run("empty_grid", vec![], [1, 16, 0, 7]).is_empty());
    assert!(run("no_batch", vec![], [0, 16, 5, 7]).is_empty());
    // NaN at one pixel of batch item 0: item 0's output is NaN everywhere (the conv, the four
    // scan directions and the LayerNorm over channels spread it), item 1 is bitwise unchanged.
    let g = TensorFile::open(golden_dir().join(LAYER)).unwrap();
    let input = g.tensor("input").unwrap().data().to_vec();
    let clean = run("clean", input.clone(), [2, 16, 5, 7]);
    let mut dirty = input;
    dirty[3 * 35 + 2 * 7 + 4] = f32::NAN;
    let got = run("nan", dirty, [2, 16, 5, 7]);
    let half = got.len() / 2;
    assert!(got[..half].iter().all(|v| v.is_nan()), "item 0 not all NaN");
    let b = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(b(&got[half..]), b(&clean[half..]), "item 1 changed");
}

#[test]
fn unwritable_output_paths() {
    let tmp = TempDir::new("unwritable");
    let scan_in = write(
        &tmp,
        "in.safetensors",
        &file_bytes(&scan_inputs(), &[], &[]),
    );
    let layer_in = layer_file(&tmp, "layer_in", &|_| {}, &[]);
    let file = write(&tmp, "a_file", b"x");
    let before = tmp.entries();
    for (cmd, input) in [("scan", &scan_in), ("layer", &layer_in)] {
        for out in [
            "/nonexistent/dir/out.safetensors".to_string(),
            format!("{}/below_a_file.safetensors", p(&file)),
            p(&tmp.0).to_string(),
            "/proc/version".to_string(),
        ] {
            let o = ss2d(&[cmd, p(input), &out]);
            check_failure(&format!("{cmd} -> {out}"), &o, &["cannot write"]);
        }
    }
    assert_eq!(tmp.entries(), before, "files left behind");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// `SS2D_PRETEND_CPU` lowers the level the startup check sees: a build above it refuses to
/// run with one line naming both levels; a build at or below it runs. An unknown value is an
/// error.
#[test]
fn isa_check_refuses_a_build_above_the_cpu() {
    let tmp = TempDir::new("isa");
    let input = write(
        &tmp,
        "in.safetensors",
        &file_bytes(&scan_inputs(), &[], &[]),
    );
    let out = tmp.path("out.safetensors");
    let args = ["scan", p(&input), p(&out)];
    let compiled = SimdLevel::compiled();
    for pretend in [SimdLevel::Baseline, SimdLevel::Avx2, SimdLevel::Avx512] {
        // SS2D_ISA cleared: `.ci/levels.sh` pins levels for the whole test process, and a
        // pinned level above the pretended CPU is (rightly) an error of its own.
        let o = run_for(
            &args,
            &[("SS2D_PRETEND_CPU", pretend.name()), ("SS2D_ISA", "")],
            Duration::from_secs(60),
        )
        .unwrap();
        if compiled > pretend {
            check_failure(
                &format!("pretend {}", pretend.name()),
                &o,
                &[&format!("built for {}", compiled.name()), pretend.name()],
            );
            assert!(!out.exists());
        } else {
            check_ok(&format!("pretend {}", pretend.name()), &o);
            std::fs::remove_file(&out).unwrap();
        }
    }
    let o = run_for(
        &args,
        &[("SS2D_PRETEND_CPU", "pentium")],
        Duration::from_secs(60),
    )
    .unwrap();
    check_failure("bad pretend", &o, &["SS2D_PRETEND_CPU", "pentium"]);
}

/// The real thing, where `qemu-x86_64` exists: run this binary on an emulated CPU without AVX
/// (`-cpu Nehalem`). A build for x86-64-v3 or v4 must exit with status 1 and the ISA message,
/// not die of SIGILL; a plain build (the default: run-time dispatch) must run and write its
/// output. (Without qemu a counted skip, `ss2d_testsupport::skip`.)
#[test]
fn isa_check_on_an_emulated_older_cpu() {
    let compiled = SimdLevel::compiled();
    let qemu = std::env::var("SS2D_QEMU").unwrap_or_else(|_| "qemu-x86_64".into());
    if Command::new(&qemu).arg("--version").output().is_err() {
        ss2d_testsupport::skip(
            "ss2d-cli isa_check_on_an_emulated_older_cpu",
            &format!("{qemu} not found (install qemu-user to run this test)"),
        );
        return;
    }
    let tmp = TempDir::new("qemu");
    let input = write(
        &tmp,
        "in.safetensors",
        &file_bytes(&scan_inputs(), &[], &[]),
    );
    let out = tmp.path("out.safetensors");
    for args in [
        vec!["scan", p(&input), p(&out)],
        vec!["scan", "--help"],
        vec!["--version"],
    ] {
        let o = Command::new(&qemu)
            .args(["-cpu", "Nehalem", BIN])
            .env_remove("SS2D_ISA")
            .args(&args)
            .output()
            .expect("run qemu");
        let err = String::from_utf8_lossy(&o.stderr);
        let what = format!(
            "`ss2d {}` built for {} on an emulated CPU without AVX",
            args.join(" "),
            compiled.name()
        );
        // Never a signal (SIGILL before the check), whatever the command.
        assert!(
            o.status.code().is_some(),
            "{what}: killed by a signal ({:?}): an instruction of the build's level ran before \
             the ISA check; stderr: {err}",
            o.status
        );
        if args.len() == 3 && compiled > SimdLevel::Baseline {
            assert!(
                o.status.code() == Some(1) && err.contains(compiled.name()),
                "{what}: expected status 1 and the ISA error, got {:?}; stderr: {err}",
                o.status
            );
            assert!(!out.exists());
        } else if args.len() == 3 {
            // A plain (baseline-floor) build runs there, dispatching to the baseline level.
            assert!(
                o.status.success(),
                "{what}: expected success, got {:?}; stderr: {err}",
                o.status
            );
            assert!(out.exists(), "{what}: no output written");
            std::fs::remove_file(&out).unwrap();
        }
    }
}
