//! The pre-`main` CPU gate of the `ss2d` binary (x86-64 Linux).
//!
//! A build with `-C target-cpu=x86-64-v3` (or `v4`, or `native`) may use AVX, BMI or AVX-512
//! instructions anywhere in code compiled for it, including `main` itself and the argument
//! parser, so a check written in Rust can die of SIGILL before it runs. This gate is written in
//! assembly that uses only baseline x86-64 instructions, and runs from `.init_array`, before
//! any code of this crate: it compares CPUID (and the OS-enabled register state, XCR0) with the
//! target features this binary was compiled with and, when one is missing, writes one line to
//! stderr and exits with status 1 (the same status and wording as the `ss2d_cli::isa` check, which
//! still runs in `main` and also serves `SS2D_PRETEND_CPU`).
#![allow(unsafe_code)]

/// The CPUID bits, XCR0 state and message of this build.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod bits {
    use ss2d_core::level::x86;

    /// The CPUID leaf-1 ECX bits this build needs: the compiled-in features of the one table
    /// (`ss2d_core::level::x86::FEATURES`), plus OSXSAVE (bit 27) when AVX state is needed
    /// (XGETBV requires it).
    pub const LEAF1_ECX: u32 = x86::compiled_masks().0 | bit(AVX, 27);
    /// The CPUID leaf-7 (subleaf 0) EBX bits this build needs.
    pub const LEAF7_EBX: u32 = x86::compiled_masks().1;
    /// The CPUID leaf-0x80000001 ECX bits this build needs.
    pub const EXT1_ECX: u32 = x86::compiled_masks().2;
    /// The XCR0 state components the OS must enable: SSE and AVX (bits 1, 2), and the
    /// AVX-512 opmask and upper ZMM state (bits 5, 6, 7).
    pub const XCR0: u32 = if AVX512 {
        0xe6
    } else if AVX {
        0x06
    } else {
        0
    };

    const AVX: bool = cfg!(target_feature = "avx");
    const AVX512: bool = cfg!(target_feature = "avx512f");

    const fn bit(on: bool, n: u32) -> u32 {
        if on {
            1 << n
        } else {
            0
        }
    }

    /// The one line written when the CPU lacks a feature.
    pub const MESSAGE: &str = if AVX512 {
        "ss2d: error: this binary was built for x86-64-v4 (AVX-512) but the CPU lacks features it uses; rebuild with RUSTFLAGS=\"-C target-cpu=native\" (or a lower level)\n"
    } else if AVX {
        "ss2d: error: this binary was built for x86-64-v3 (AVX2) but the CPU lacks features it uses; rebuild with RUSTFLAGS=\"-C target-cpu=native\" (or a lower level)\n"
    } else {
        "ss2d: error: this binary was built for CPU features the processor lacks; rebuild with RUSTFLAGS=\"-C target-cpu=native\" (or a lower level)\n"
    };
    /// [`MESSAGE`] as a byte array the assembly can address.
    pub static MESSAGE_BYTES: [u8; MESSAGE.len()] = {
        let mut out = [0u8; MESSAGE.len()];
        let b = MESSAGE.as_bytes();
        let mut i = 0;
        while i < b.len() {
            out[i] = b[i];
            i += 1;
        }
        out
    };
}

// The gate. Only baseline x86-64 instructions (CPUID, XGETBV after OSXSAVE is known to be set,
// SYSCALL). It calls nothing, so stack alignment does not matter; it saves RBX (callee-saved,
// clobbered by CPUID) and may clobber the caller-saved RAX, RCX, RDX, RSI, RDI, R8, R11.
// Linux x86-64 syscalls: write = 1, exit_group = 231.
//
// SAFETY: the function follows the System V calling convention for a `void f(void)` (the
// arguments glibc passes to `.init_array` entries are ignored), touches no memory but its own
// stack slot and the read-only message, and either returns normally or ends the process.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
core::arch::global_asm!(
    ".pushsection .text.ss2d_isa_gate,\"ax\",@progbits",
    ".p2align 4",
    "ss2d_isa_gate:",
    "push rbx",
    // Leaf 0: the highest standard leaf must reach 7.
    "xor eax, eax",
    "xor ecx, ecx",
    "cpuid",
    "cmp eax, 7",
    "jb 9f",
    // Leaf 1, ECX.
    "mov eax, 1",
    "xor ecx, ecx",
    "cpuid",
    "and ecx, {leaf1}",
    "cmp ecx, {leaf1}",
    "jne 9f",
    // Leaf 7 subleaf 0, EBX.
    "mov eax, 7",
    "xor ecx, ecx",
    "cpuid",
    "and ebx, {leaf7}",
    "cmp ebx, {leaf7}",
    "jne 9f",
    // Extended leaf 0x80000001, ECX (when required bits exist).
    "mov r8d, {ext1}",
    "test r8d, r8d",
    "jz 3f",
    "mov eax, 0x80000000",
    "xor ecx, ecx",
    "cpuid",
    "cmp eax, 0x80000001",
    "jb 9f",
    "mov eax, 0x80000001",
    "xor ecx, ecx",
    "cpuid",
    "and ecx, r8d",
    "cmp ecx, r8d",
    "jne 9f",
    "3:",
    // XCR0 (only when AVX state is required; OSXSAVE was checked in leaf 1 then).
    "mov r8d, {xcr0}",
    "test r8d, r8d",
    "jz 4f",
    "xor ecx, ecx",
    "xgetbv",
    "and eax, r8d",
    "cmp eax, r8d",
    "jne 9f",
    "4:",
    "pop rbx",
    "ret",
    // Missing: write(2, message, len); exit_group(1).
    "9:",
    "mov eax, 1",
    "mov edi, 2",
    "lea rsi, [rip + {msg}]",
    "mov edx, {len}",
    "syscall",
    "mov eax, 231",
    "mov edi, 1",
    "syscall",
    "ud2",
    ".popsection",
    // Run it before main (glibc and musl call `.init_array` entries in order before `main`).
    ".pushsection .init_array,\"aw\"",
    ".p2align 3",
    ".quad ss2d_isa_gate",
    ".popsection",
    leaf1 = const bits::LEAF1_ECX as i32,
    leaf7 = const bits::LEAF7_EBX as i32,
    ext1 = const bits::EXT1_ECX as i32,
    xcr0 = const bits::XCR0 as i32,
    msg = sym bits::MESSAGE_BYTES,
    len = const bits::MESSAGE.len(),
);
