# Shared by the CI scripts (sourced, not run).

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
