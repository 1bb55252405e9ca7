#!/usr/bin/env python3
"""Code size of ss2d-core's scan in a firmware ELF (issue 12), from `llvm-nm --size-sort`.

Usage: embedded-size.py ELF [BUDGET_BYTES]

Sums the sizes of the code symbols (t/T/w/W) by owner, demangled (the firmware is built with
v0 symbol mangling, so generic kernel instances carry their const N):
  scan code  = every ss2d_core function (kernel, packing, math, validation) except
               `core::fmt` impls (Display of errors: formatting, not the scan)
  kernel     = ss2d_core::..::kernel:: functions (the micro-kernel; its module is
               platform::<level>::g::kernel since the per-level rewrite)
  per-N      = kernel::block::<N, ..> instances (4 B/C access variants each; none with the
               `compact` feature, whose kernel is one rolled block_rolled)
and, for context, libm/compiler-builtins, core (panics, formatting), the firmware with
cortex-m(-rt) and semihosting. Exit status 1 when BUDGET_BYTES is given and the scan code
exceeds it.
"""
import re
import subprocess
import sys


def main():
    elf = sys.argv[1]
    budget = int(sys.argv[2]) if len(sys.argv) > 2 else None
    nm = subprocess.run(
        ["llvm-nm", "--size-sort", "--radix=d", "-C", elf],
        check=True, capture_output=True, text=True,
    ).stdout
    groups = {}
    per_n = {}
    for line in nm.splitlines():
        parts = line.split(None, 2)
        if len(parts) != 3 or parts[1] not in "tTwW":
            continue
        size, name = int(parts[0]), parts[2]
        if "ss2d_core::" in name and "core::fmt::" not in name:
            group = "scan: kernel" if re.search(r"ss2d_core::(\S+::)?kernel::", name) else "scan: driver, packing, math, validation"
            m = re.search(r"ss2d_core::(?:\S+::)?kernel::block::<(\d+),", name)
            if m:
                per_n[int(m.group(1))] = per_n.get(int(m.group(1)), 0) + size
        elif "ss2d_core::" in name:
            group = "ss2d-core formatting (error Display)"
        elif re.search(r"\blibm::|compiler_builtins::|^__aeabi|^mem(cpy|set|move|cmp)$|^__(udiv|div|mod|umod)", name):
            group = "libm, compiler-builtins"
        elif re.search(r"cortex_m_semihosting::|cortex_m_rt::|cortex_m::|ss2d_embedded::|^(Reset|main|__pre_init|HardFault|DefaultHandler|ss2d_mark_)", name):
            group = "firmware, cortex-m-rt, semihosting"
        else:
            group = "core (panics, formatting), other"
        groups[group] = groups.get(group, 0) + size

    scan = sum(v for k, v in groups.items() if k.startswith("scan:"))
    print(f"code size by owner ({elf.rsplit('/', 1)[-1]}, llvm-nm):")
    for k in sorted(groups, key=lambda k: (not k.startswith("scan:"), k)):
        print(f"  {k:<45} {groups[k]:>9} B")
    print(f"  {'SCAN CODE TOTAL (kernel+driver)':<45} {scan:>9} B ({scan / 1024:.1f} KiB)")
    if per_n:
        print("  kernel blocks per N (4 B/C variants each): " + ", ".join(f"N={n}: {s}" for n, s in sorted(per_n.items())))
        for n in (1, 16):
            if n in per_n:
                other = sum(s for k, s in per_n.items() if k != n)
                est = scan - other
                print(f"  estimated scan code if only N={n} were instantiated: {est} B ({est / 1024:.1f} KiB)")
    if budget is not None:
        verdict = "ok" if scan <= budget else "OVER BUDGET"
        print(f"BUDGET scan code {scan} B vs {budget} B: {verdict}")
        if scan > budget:
            sys.exit(1)


if __name__ == "__main__":
    main()
