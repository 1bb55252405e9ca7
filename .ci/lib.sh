# Shared by the CI scripts (sourced, not run).

# The Debian packages of the stages that emulate other targets, named once: `.ci/run` installs
# all of them in the background from its first second, and each script installs its own list
# when it runs alone (or when that background install failed).
#  - the emulated runs (.ci/emulated.sh): the aarch64 cross toolchain and std, QEMU user mode
#    (qemu-aarch64, and qemu-x86_64 for the x86 CPUs without AVX-512 / AVX);
#  - the Cortex-M firmware (.ci/embedded.sh): the rustc whose core builds with -Zbuild-std, its
#    clippy, the linker, the board emulator, llvm-nm / llvm-size.
EMULATED_PKGS=(rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  qemu-user)
EMBEDDED_PKGS=(rustc-web rust-web-src rust-web-clippy lld qemu-system-arm llvm python3)

# apt_install PKG...: installs Debian packages when running as root with apt-get; elsewhere a
# no-op that succeeds (the caller then finds the tool missing: a counted skip, or a failure
# under CI).
# Tries the package lists already on the machine first, then updates them and tries again.
# Packages for arm64 (`name:arm64`) add that architecture first. Returns apt-get's status.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  echo "installing: $*"
  if [[ " $* " == *":arm64 "* ]]; then dpkg --add-architecture arm64; fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300)
  "${apt[@]}" "$@" >/dev/null 2>&1 || { apt-get update -qq && "${apt[@]}" "$@" >/dev/null; }
}
