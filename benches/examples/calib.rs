use std::time::Instant;
use wide::f32x16 as V;
fn main() {
    let mut a = [V::splat(1.0); 8];
    let m = V::splat(0.999999);
    let c = V::splat(1e-7);
    let reps = 20_000_000u64;
    let t = Instant::now();
    for _ in 0..reps {
        for x in a.iter_mut() {
            *x = x.mul_add(m, c);
        }
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "fma zmm: {:.2} G fma-instr/s ({:?})",
        (reps * 8) as f64 / dt / 1e9,
        a[0].to_array()[0]
    );
    let mut s = 1.0f64;
    let t = Instant::now();
    for i in 0..200_000_000u64 {
        s = s * 0.9999999 + (i & 1) as f64;
    }
    let dt = t.elapsed().as_secs_f64();
    println!("scalar dep chain: {:.2} ns/iter ({s})", dt / 2e8 * 1e9);
}
