//! `files`: arbitrary bytes (seeded with small golden files) into the CLI's safetensors reader
//! (`ss2d_cli::io::TensorFile`), every accessor, the metadata parsing, the `scan` command's
//! loading path (`ss2d_cli::scan::scan_file`) and the `layer` command's (`ss2d_cli::layer::
//! run_layer`, config resolution included). Each returns a clean error or a result, never
//! panics, and never allocates from a header's claims alone (libFuzzer's `-malloc_limit_mb`
//! turns such an allocation into a finding).
//!
//! An input whose first byte is `S` is a *structured* file: the rest drives an `Unstructured`
//! that writes a well-formed-looking header (known tensor names, dtypes, shapes mixing small and
//! huge sizes, offsets usually consistent) and metadata with the keys the commands read, so the
//! fuzzer reaches the command logic without first having to rediscover JSON.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ss2d_cli::io::TensorFile;
use ss2d_cli::layer::{run_layer, LayerOptions};
use ss2d_cli::scan::{scan_file, Backend, ScanOptions};
use ss2d_fuzz::Size;

const NAMES: [&str; 24] = [
    "u",
    "delta",
    "A",
    "B",
    "C",
    "D",
    "z",
    "delta_bias",
    "input",
    "in_proj.weight",
    "in_proj.bias",
    "conv2d.weight",
    "conv2d.bias",
    "x_proj_weight",
    "dt_projs_weight",
    "dt_projs_bias",
    "A_logs",
    "Ds",
    "out_norm.weight",
    "out_norm.bias",
    "out_proj.weight",
    "out_proj.bias",
    "x",
    "ys",
];

const DTYPES: [(&str, usize); 8] = [
    ("F32", 4),
    ("F32", 4),
    ("F32", 4),
    ("F64", 8),
    ("F16", 2),
    ("BF16", 2),
    ("I64", 8),
    ("U8", 1),
];

const META_KEYS: [&str; 12] = [
    "delta_softplus",
    "return_last_state",
    "d_model",
    "d_state",
    "ssm_ratio",
    "dt_rank",
    "d_conv",
    "conv_bias",
    "forward_type",
    "channel_first",
    "scans",
    "one_by_one",
];

const META_VALUES: [&str; 20] = [
    "true",
    "false",
    "0",
    "1",
    "2",
    "3",
    "4",
    "16",
    "-1",
    "1.5",
    "auto",
    "nan",
    "inf",
    "1e308",
    "v05_noz",
    "v0",
    "v052dc",
    "v05",
    "18446744073709551615",
    "TRUE",
];

#[derive(Arbitrary, Debug)]
struct TensorSpec {
    name: u8,
    dtype: u8,
    shape: Vec<Size>,
    /// Data length mode: 0 = as the shape says, else a small arbitrary count of bytes.
    bytes: Option<u16>,
}

/// Builds a safetensors file from the unstructured bytes.
fn structured(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let specs: Vec<TensorSpec> = u.arbitrary()?;
    let nmeta: u8 = u.arbitrary()?;
    let mut header = String::from("{");
    let mut data = Vec::new();
    let mut first = true;
    for (i, t) in specs.iter().take(24).enumerate() {
        let name = NAMES[t.name as usize % NAMES.len()];
        let (dtype, width) = DTYPES[t.dtype as usize % DTYPES.len()];
        let shape: Vec<usize> = t.shape.iter().take(6).map(|s| s.get()).collect();
        let numel = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        let want = numel.and_then(|n| n.checked_mul(width));
        let len = match (t.bytes, want) {
            (None, Some(w)) if w <= 1 << 16 => w,
            (Some(b), _) => b as usize % 4096,
            _ => 4,
        };
        let start = data.len();
        for k in 0..len {
            // Finite small values mostly; the byte pattern is cheap to make.
            data.push(if k % 4 == 3 { 0x3f } else { (i * 31 + k) as u8 });
        }
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        if !first {
            header.push(',');
        }
        first = false;
        // Duplicate names are left in: the JSON parser must reject or dedupe them cleanly.
        header.push_str(&format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}",
            dims.join(","),
            start + len
        ));
    }
    if nmeta > 0 {
        if !first {
            header.push(',');
        }
        header.push_str("\"__metadata__\":{");
        for k in 0..(nmeta % 12) as usize {
            let key: u8 = u.arbitrary()?;
            let val: u8 = u.arbitrary()?;
            if k > 0 {
                header.push(',');
            }
            header.push_str(&format!(
                "\"{}\":\"{}\"",
                META_KEYS[key as usize % META_KEYS.len()],
                META_VALUES[val as usize % META_VALUES.len()]
            ));
        }
        header.push('}');
    }
    header.push('}');
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    Ok(out)
}

fn exercise(bytes: Vec<u8>) {
    let Ok(file) = TensorFile::from_bytes("fuzz.safetensors", bytes) else {
        return;
    };
    let _ = file.path();
    let names: Vec<String> = file.names().map(str::to_string).collect();
    for name in &names {
        assert!(file.contains(name));
        if let Ok(t) = file.tensor(name) {
            // The data is exactly what the shape says.
            assert_eq!(ss2d_cli::io::numel(t.shape()), Some(t.data().len()));
            let _ = (t.name(), t.rank(), t.is_borrowed());
        }
        let _ = file.tensor_rank(name, &[1, 2, 3]);
        let _ = file.optional_rank(name, &[4]);
    }
    let _ = file.tensor("no such tensor");
    for key in META_KEYS {
        let _ = file.meta_bool(key);
    }
    for msg in file.metadata().values() {
        let _ = msg.len();
    }
    // The `scan` command's loading path (kernel; the reference on small inputs too).
    for backend in [Backend::Kernel { threads: 1 }, Backend::Reference] {
        let opts = ScanOptions {
            backend,
            delta_softplus: None,
            return_last_state: None,
        };
        match scan_file(&file, &opts) {
            Ok(r) => {
                assert_eq!(
                    r.out.len(),
                    file.tensor("u").map(|t| t.data().len()).unwrap()
                );
            }
            Err(e) => {
                let m = e.to_string();
                assert!(!m.contains('\n'), "multi-line message: {m}");
            }
        }
    }
    // The `layer` command's loading path: config from metadata and shapes, weights, forward.
    let opts = LayerOptions {
        threads: 1,
        ..LayerOptions::default()
    };
    if let Err(e) = run_layer(&file, &file, &opts) {
        let m = e.to_string();
        assert!(!m.contains('\n'), "multi-line message: {m}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let [b'S', rest @ ..] = data {
        let mut u = Unstructured::new(rest);
        if let Ok(bytes) = structured(&mut u) {
            exercise(bytes);
        }
    } else {
        exercise(data.to_vec());
    }
});
