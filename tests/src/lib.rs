//! Conformance tests: golden data, proptest against the reference, determinism.
