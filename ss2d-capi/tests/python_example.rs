//! Runs `examples/golden.py` (ctypes + numpy, strided views, a Python host pool through
//! `parallel_for`) against the shared library of this build. Without `python3` and numpy the
//! test is skipped through `ss2d_testsupport::skip` (printed, counted, and a failure under CI;
//! `.ci/run` installs numpy).
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::run_within;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/golden.py");
const FORK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fork.py");

/// This build's `libss2d_capi.so`: next to the test executable (`deps/`) or one level up.
fn shared_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    let up = deps.parent().expect("profile dir").to_path_buf();
    [deps, up]
        .into_iter()
        .map(|d| d.join("libss2d_capi.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libss2d_capi.so not found near {}", exe.display()))
}

#[test]
fn python_example_passes_the_goldens() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy = Command::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_numpy {
        ss2d_testsupport::skip(
            "ss2d-capi python_example",
            &format!("`{python} -c \"import numpy\"` failed (pip install numpy to run it)"),
        );
        return;
    }
    let out = Command::new(&python)
        .arg(SCRIPT)
        .arg(shared_lib())
        .arg(ss2d_testsupport::golden_dir())
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "golden.py failed:\n{text}");
    let cases = ss2d_testsupport::golden_cases("selective_scan").len()
        + ss2d_testsupport::golden_cases("ss2d").len();
    assert!(text.contains(&format!("\n{cases} cases passed")), "{text}");
}

/// `examples/fork.py`: threads, `os.fork()`, the child's threaded calls finish (standard
/// library only). A missing `python3` fails this test under CI (`CI` set) and is a printed
/// skip elsewhere.
#[test]
fn python_fork_child_completes() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    // The script kills a hung child after 20 s; this bounds the script itself.
    let run = run_within(Command::new(&python).arg(FORK_SCRIPT).arg(shared_lib()), 60);
    let Ok((status, text)) = run else {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{python}` cannot be started, and CI requires the Python fork test"
        );
        println!("SKIPPED python_fork_child_completes: `{python}` cannot be started");
        return;
    };
    println!("{text}");
    assert!(status.success(), "fork.py failed:\n{text}");
    assert!(
        text.contains("ok   fork: the child's calls") && text.contains("0 failures"),
        "{text}"
    );
}
