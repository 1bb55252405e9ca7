//! Quick single-threaded kernel timing: `cargo run --release -p ss2d-benches --example quick -- B D L N G [cf|cl] [reps]`
//! (median of `reps` runs, default 9; `reps = 1` for instruction counting under callgrind).
//! A last argument `ref` times the scalar f32 reference instead.
use ss2d_benches::ScanInputs;
use ss2d_core::{Layout, Walk};
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .take(5)
        .map(|s| s.parse().unwrap())
        .collect();
    let cl = std::env::args().nth(6).as_deref() == Some("cl");
    let (b, d, l, n, g) = (a[0], a[1], a[2], a[3], a[4]);
    let mut inp = ScanInputs::new(b, d, l, n, g);
    if cl {
        inp.shape.layout = Layout::ChannelLast;
    }
    let v = inp.shape.validate().unwrap();
    let mut scratch = vec![0.0; ss2d_core::scratch_len(&v)];
    let mut out = vec![0.0; b * d * l];
    let walk = Walk::forward(l);
    let reps: usize = std::env::args().nth(7).map_or(9, |s| s.parse().unwrap());
    let reference = std::env::args().nth(8).as_deref() == Some("ref");
    let args = inp.args();
    let mut run = || {
        if reference {
            ss2d_core::reference::selective_scan::<f32>(&inp.shape, &walk, &args, &mut out, None)
                .unwrap();
        } else {
            ss2d_core::selective_scan(&inp.shape, &walk, &args, &mut out, None, &mut scratch)
                .unwrap();
        }
    };
    let mut times = vec![];
    // Warm-up: let the clock ramp up (a short run otherwise times the idle frequency).
    let warm = Instant::now();
    for i in 0.. {
        if reps <= 1 || (i >= 1 && warm.elapsed().as_secs_f64() > 0.3) {
            break;
        }
        run();
    }
    for _ in 0..reps {
        let t = Instant::now();
        run();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = times[times.len() / 2];
    let el = (b * d * l * n) as f64;
    println!(
        "{}B={b} D={d} L={l} N={n} G={g} {}: median {:.3} ms, {:.2} G elements/s (best {:.2}) ({})",
        if reference { "reference " } else { "" },
        if cl { "cl" } else { "cf" },
        med * 1e3,
        el / med / 1e9,
        el / times[0] / 1e9,
        ss2d_core::SimdLevel::current()
    );
}
