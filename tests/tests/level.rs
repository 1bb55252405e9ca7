//! A crate that depends on ss2d and builds without RUSTFLAGS (as this test crate does: the
//! workspace sets no target-cpu) runs the best SIMD level of the CPU: the kernels dispatch at
//! run time, the build's compile-time floor is the x86-64 baseline.

use ss2d_core::{level::x86, SimdLevel};

#[test]
fn plain_build_runs_the_best_level_of_the_cpu() {
    let pinned = std::env::var("SS2D_ISA").unwrap_or_default();
    let level = ss2d_conformance::level();
    eprintln!(
        "LEVEL: compiled floor {}, detected {}, CPUID {}, running {level} (SS2D_ISA={pinned:?})",
        SimdLevel::compiled(),
        SimdLevel::detect(),
        x86::detect_raw()
    );
    if cfg!(target_arch = "x86_64") {
        // CPUID read directly and the standard library's detection agree.
        assert_eq!(
            SimdLevel::detect(),
            x86::detect_raw().max(SimdLevel::compiled())
        );
    }
    if pinned.is_empty() || pinned == "auto" {
        assert_eq!(level, SimdLevel::detect());
        assert_eq!(SimdLevel::available().last(), Some(level));
    } else {
        assert_eq!(Some(level), SimdLevel::from_name(&pinned));
    }
}

#[test]
fn every_available_level_runs_a_scan_and_agrees_with_the_reference() {
    use ss2d_conformance::Spec;
    let p = Spec::full(2, 2 * ss2d_core::MAX_LANES + 3, 150, 16).build();
    let want = p.reference::<f64>();
    let mut n = 0;
    for level in SimdLevel::available() {
        let plan = p.plan().with_level(level).expect("available level");
        let mut out = vec![f32::NAN; p.out_len()];
        let mut st = p.want_final.then(|| vec![f32::NAN; p.state_len()]);
        let mut scratch = vec![0.0; plan.scratch_len()];
        plan.run(&mut out, st.as_deref_mut(), &mut scratch)
            .expect("run");
        ss2d_conformance::assert_close(&format!("{level}"), &out, &want.0, 1e-5);
        n += 1;
    }
    assert!(n >= 1, "no SIMD level available");
    // A level this build or CPU lacks is refused, not silently replaced.
    for &level in SimdLevel::all() {
        assert_eq!(
            p.plan().with_level(level).is_ok(),
            level.is_available(),
            "{level}"
        );
    }
}
