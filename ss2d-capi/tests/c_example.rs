//! Builds `examples/golden.c` with the system C compiler (`cc`) against the static and the
//! shared library this build produced, runs it on the golden data, and checks exit status 0.
//! Builds `examples/fork.c` with the README's two link lines, verbatim, and runs both
//! binaries (no `LD_LIBRARY_PATH`): library pool, thread bound, `fork()`.
//! Also checks that the header compiles as C++ (skipped through `ss2d_testsupport::skip`
//! without a C++ compiler).
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::run_within;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Where cargo put this build's `libss2d_capi.{a,so}`: next to this test executable (in
/// `deps/`) or one level up (the profile directory).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    for dir in [
        deps.clone(),
        deps.parent().expect("profile dir").to_path_buf(),
    ] {
        if dir.join("libss2d_capi.a").exists() {
            return dir;
        }
    }
    panic!(
        "libss2d_capi.a not found next to {} (cargo builds it with the library target)",
        exe.display()
    );
}

/// Runs `cmd` (at most 300 s) and asserts success: its output.
fn run(cmd: &mut Command) -> String {
    let (status, text) = run_within(cmd, 300).unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed ({status}):\n{text}");
    text
}

fn cc() -> Command {
    let mut c = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    c.args([
        "-std=c11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-I",
    ])
    .arg(Path::new(MANIFEST).join("include"))
    .arg(Path::new(MANIFEST).join("examples/golden.c"));
    c
}

#[test]
fn c_example_passes_the_goldens_static_and_shared() {
    let libs = lib_dir();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_example");
    std::fs::create_dir_all(&out).unwrap();

    let stat = out.join("golden_static");
    run(cc()
        .arg(libs.join("libss2d_capi.a"))
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&stat));
    let text = run(Command::new(&stat).arg(ss2d_testsupport::golden_dir()));
    println!("{text}");
    let counts = format!(
        "{} selective-scan cases, {} layer cases, 0 failures",
        ss2d_testsupport::golden_cases("selective_scan").len(),
        ss2d_testsupport::golden_cases("ss2d").len()
    );
    assert!(text.contains(&counts), "{text}");

    if libs.join("libss2d_capi.so").exists() {
        let dynamic = out.join("golden_shared");
        run(cc()
            .arg("-L")
            .arg(&libs)
            .arg("-lss2d_capi")
            .arg(format!("-Wl,-rpath,{}", libs.display()))
            .args(["-lpthread", "-lm", "-o"])
            .arg(&dynamic));
        let text = run(Command::new(&dynamic).arg(ss2d_testsupport::golden_dir()));
        assert!(text.contains(&counts), "{text}");
    }
}

#[test]
fn header_compiles_as_cpp() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    if Command::new(&cxx).arg("--version").output().is_err() {
        ss2d_testsupport::skip(
            "ss2d-capi header_compiles_as_cpp",
            &format!("no C++ compiler ({cxx})"),
        );
        return;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_example");
    std::fs::create_dir_all(&out).unwrap();
    let src = out.join("header_check.cpp");
    std::fs::write(
        &src,
        "#include \"ss2d.h\"\nint main() { return ss2d_cpu_check() == SS2D_OK ? 0 : 1; }\n",
    )
    .unwrap();
    run(Command::new(&cxx)
        .args([
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(Path::new(MANIFEST).join("include"))
        .arg(&src));
}

/// The README's `cc ... app.c ...` lines.
fn readme_link_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(MANIFEST).join("README.md")).unwrap();
    let lines: Vec<String> = readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cc ") && l.contains(" app.c "))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 2, "README link lines: {lines:?}");
    lines
}

/// The README's link lines, run as written (by `sh`, in a folder laid out like the
/// workspace: `ss2d-capi/include`, `target/release` and `app.c` = `examples/fork.c`), then the
/// binaries they make, without `LD_LIBRARY_PATH`: the shared one must find the library
/// through its rpath. The program checks the pool, the thread bound and `fork()`.
#[test]
fn readme_link_lines_build_the_fork_example() {
    let libs = lib_dir();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme_link");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("ss2d-capi")).unwrap();
    std::fs::create_dir_all(root.join("target")).unwrap();
    std::os::unix::fs::symlink(
        Path::new(MANIFEST).join("include"),
        root.join("ss2d-capi/include"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&libs, root.join("target/release")).unwrap();
    std::fs::copy(
        Path::new(MANIFEST).join("examples/fork.c"),
        root.join("app.c"),
    )
    .unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for (i, line) in readme_link_lines().iter().enumerate() {
        let exe = format!("app{i}");
        let line = line.replacen("cc ", &format!("{cc} "), 1);
        run(Command::new("sh")
            .arg("-c")
            .arg(format!("{line} -o {exe}"))
            .env_remove("PWD")
            .current_dir(&root));
        let text = run(Command::new(root.join(&exe))
            .env_remove("LD_LIBRARY_PATH")
            .current_dir("/"));
        println!("{line}\n{text}");
        assert!(text.contains("fork example: 0 failures"), "{text}");
        assert!(text.contains("ok   fork: the child's calls"), "{text}");
    }
}
