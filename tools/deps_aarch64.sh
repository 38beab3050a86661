#!/usr/bin/env bash
# Installs what `make test-aarch64` needs: Debian's aarch64 cross compiler, qemu-user to run its
# output, and the arm64 builds of the libraries CMakeLists.txt links (Debian multiarch, beside
# the amd64 ones). Cheap to run again: it only installs what is missing.
set -euo pipefail

HOST_PACKAGES=(gcc-aarch64-linux-gnu qemu-user)
# The C libraries of tools/deps.sh, minus the optional ones the aarch64 build leaves out: libcurl
# (headers only, for downloads) and Open MPI (`heads` under mpirun), neither of which the aarch64
# tests exercise.
ARM64_PACKAGES=(
  libopenblas-dev libcjson-dev libutf8proc-dev libpcre2-dev libstb-dev
  libcairo2-dev libpango1.0-dev libmicrohttpd-dev
  libgomp1 # the tests run on the multiarch runtime (tools/aarch64-toolchain.cmake says why)
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

added_arch=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "deps-aarch64: adding the arm64 architecture to dpkg" >&2
  $SUDO dpkg --add-architecture arm64
  added_arch=1
fi

missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${ARM64_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p:arm64" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p:arm64")
done
if ((${#missing[@]})) || ((added_arch)); then
  echo "deps-aarch64: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq -o DPkg::Lock::Timeout=600
  # A Multi-Arch: same library must be the same version on both architectures, so apt may
  # upgrade amd64 packages to the mirror's point release alongside. No recommends: they would
  # bring qemu-user-binfmt, which registers qemu with the kernel for every arm64 binary on the
  # machine, while the tests run qemu explicitly.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 \
    "${missing[@]}" >/dev/null
fi
