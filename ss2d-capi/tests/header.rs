//! The checked-in header `include/ss2d.h` must be what cbindgen generates from the sources.
//! Regenerate it with `SS2D_BLESS=1 cargo test -p ss2d-capi --release --test header`.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on ss2d-capi");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/ss2d.h");
    if std::env::var_os("SS2D_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/ss2d.h");
        return;
    }
    let old = std::fs::read(&path).unwrap_or_default();
    assert!(
        old == fresh,
        "include/ss2d.h is stale: regenerate it with \
         `SS2D_BLESS=1 cargo test -p ss2d-capi --release --test header` and commit it"
    );
}
