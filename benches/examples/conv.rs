//! Single-threaded timing of the channel-last depthwise conv (`ss2d_core::conv::depthwise_cl_row`)
//! over an image, row by row: `cargo run --release -p ss2d-benches --example conv -- H W C K
//! [silu 0|1] [reps]`. A small image stays in cache: it times the kernel, not memory. `ROWS=1`:
//! one `depthwise_cl_rows` call over the image (row pairs) instead of one call per row;
//! `ROWS=2`: row pairs all written into one two-row buffer (only the input streams from
//! memory); `ROWS=3`: every row pair read from the image's first four rows (only the output
//! streams). Against a small image (all in cache) they show what memory costs the conv.
fn main() {
    let a = ss2d_benches::size_args(4, "conv H W C K [silu 0|1] [reps]");
    let (h, w, c, k) = (a[0], a[1], a[2], a[3]);
    let silu = std::env::args().nth(5).as_deref() != Some("0");
    let reps: usize = std::env::args().nth(6).map_or(101, |s| s.parse().unwrap());
    let val = |i: usize, s: usize| ((i * s) % 1000) as f32 / 1000.0 - 0.5;
    // `ALIGN=a`: the image and the output start `a` floats past a 64-byte boundary.
    let al: usize = std::env::var("ALIGN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(99);
    let mut imgb = vec![0.0f32; h * w * c + 32];
    let mut outb = vec![0.0f32; h * w * c + 32];
    let skip = |v: &Vec<f32>| {
        if al == 99 {
            0
        } else {
            (16 - (v.as_ptr() as usize / 4) % 16) % 16 + al
        }
    };
    let (si, so) = (skip(&imgb), skip(&outb));
    for (i, x) in imgb[si..si + h * w * c].iter_mut().enumerate() {
        *x = val(i, 7919);
    }
    let img = &imgb[si..si + h * w * c];
    let taps: Vec<f32> = (0..k * k * c).map(|i| val(i, 104_729)).collect();
    let bias: Vec<f32> = (0..c).map(|i| val(i, 15_485_863)).collect();
    let out = &mut outb[so..so + h * w * c];
    // `ROWS=1`: the whole image in one `depthwise_cl_rows` call instead of a call per row.
    // `ROWS=2`: calls of two rows each, all into the same two-row buffer (the output stays
    // in cache: only the input streams). `ROWS=3`: the inverse: every pair of output rows
    // from the same four input rows (the image's first four: the input stays in cache, the
    // output streams).
    let mode = std::env::var("ROWS").unwrap_or_default();
    if mode == "3" && h < 4 {
        eprintln!("ROWS=3 reads the image's first four rows: H must be at least 4");
        std::process::exit(2);
    }
    let mut hot = vec![0.0f32; 2 * w * c];
    let img4 = &img[..(4 * w * c).min(img.len())];
    let conv_rows = |img: &[f32], h: usize, oh: usize, o: &mut [f32]| {
        ss2d_core::conv::depthwise_cl_rows(&taps, Some(&bias), k, h, w, c, img, oh, silu, o)
            .unwrap();
    };
    let run = || match mode.as_str() {
        "1" => conv_rows(img, h, 0, out),
        "2" => {
            for oh in (0..h).step_by(2) {
                let n = (h - oh).min(2) * w * c;
                conv_rows(img, h, oh, &mut hot[..n]);
            }
        }
        "3" => {
            for o in out.chunks_mut(2 * w * c) {
                conv_rows(img4, 4, 1, o);
            }
        }
        _ => {
            for (oh, o) in out.chunks_mut(w * c).enumerate() {
                ss2d_core::conv::depthwise_cl_row(
                    &taps,
                    Some(&bias),
                    k,
                    h,
                    w,
                    c,
                    img,
                    oh,
                    0,
                    silu,
                    o,
                )
                .unwrap();
            }
        }
    };
    let (med, best) = ss2d_benches::time_runs(reps, run);
    let vecs = (h * w * c) as f64 / 16.0;
    println!(
        "conv {h}x{w}x{c} k={k} silu={silu}: median {:.1} us (best {:.1}), {:.2} ns per 16 outputs",
        med * 1e6,
        best * 1e6,
        med * 1e9 / vecs
    );
}
