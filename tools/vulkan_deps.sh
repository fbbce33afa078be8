#!/usr/bin/env bash
# What `make test-device` needs to build and run llama.cpp's Vulkan backend on Mesa's software
# driver (lavapipe), on Debian 12 (bookworm), from Debian's own registry:
#   - the Vulkan loader and glslc (bookworm);
#   - Mesa 25 from bookworm-backports: bookworm's Mesa 22.3 segfaults in llama.cpp's backend
#     sampler (llama_set_sampler) and inside best-of-n decodes;
#   - Vulkan headers 1.3.272 or newer: ggml-vulkan uses VK_EXT_layer_settings, which bookworm's
#     1.3.239 lacks; and the SPIR-V headers of the same release (with their CMake package).
#     Trixie's libvulkan-dev and spirv-headers are unpacked into DIR/pkg (nothing installed):
#     build with -DVulkan_INCLUDE_DIR=DIR/pkg/usr/include -DCMAKE_PREFIX_PATH=DIR/pkg/usr.
#
#   tools/vulkan_deps.sh [DIR]   (default build/vulkan)
#
# Elsewhere, install a Vulkan loader, glslc, a Vulkan driver, Vulkan headers >= 1.3.272 and
# SPIRV-Headers yourself, and set VULKAN_INCLUDE_DIR (and make's VULKAN_PREFIX, where
# SPIRV-Headers' CMake package is); this script then only checks them.
set -euo pipefail

dir="${1:-build/vulkan}"
min_header=272
sudo=""
[[ "$(id -u)" == 0 ]] || sudo=sudo

log() { printf 'vulkan_deps: %s\n' "$*" >&2; }
die() { printf 'vulkan_deps: error: %s\n' "$*" >&2; exit 1; }

header_version() {  # $1: an include dir
  sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\)$/\1/p' "$1/vulkan/vulkan_core.h" 2>/dev/null || true
}

if [[ -n "${VULKAN_INCLUDE_DIR:-}" ]]; then
  v="$(header_version "$VULKAN_INCLUDE_DIR")"
  [[ -n "$v" && "$v" -ge "$min_header" ]] \
    || die "VULKAN_INCLUDE_DIR=$VULKAN_INCLUDE_DIR: headers 1.3.$min_header or newer needed, found '${v:-none}'"
  command -v glslc >/dev/null || die "glslc is not on PATH"
  echo "$VULKAN_INCLUDE_DIR"
  exit 0
fi

command -v apt-get >/dev/null && grep -q 'VERSION_CODENAME=bookworm' /etc/os-release \
  || die "this recipe is for Debian 12 (bookworm); elsewhere set VULKAN_INCLUDE_DIR (see the top of $0)"

installed() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | grep '^install ok installed' | awk '{print $4}' || true; }

# 1. bookworm-backports, for Mesa 25.
backports=/etc/apt/sources.list.d/stars-cpp-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding bookworm-backports ($backports)"
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    | $sudo tee "$backports" >/dev/null
  $sudo apt-get update -q >&2
fi

# 2. The loader, glslc and lavapipe.
mesa="$(installed mesa-vulkan-drivers)"
mesa_ok() { [[ "${mesa%%.*}" =~ ^[0-9]+$ ]] && (( ${mesa%%.*} >= 25 )); }
if [[ -z "$(installed libvulkan-dev)" || -z "$(installed glslc)" ]] || ! mesa_ok; then
  log "installing libvulkan-dev, glslc and mesa-vulkan-drivers (bookworm-backports)"
  { $sudo apt-get install -y -q libvulkan-dev glslc \
      || { $sudo apt-get update -q && $sudo apt-get install -y -q libvulkan-dev glslc; }
    $sudo apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers; } >&2
  mesa="$(installed mesa-vulkan-drivers)"
fi
mesa_ok || die "mesa-vulkan-drivers $mesa: version 25 or newer needed"
log "mesa-vulkan-drivers $mesa, glslc $(glslc --version | head -n1)"

# 3. Headers: trixie's libvulkan-dev and spirv-headers, unpacked here.
include="$dir/pkg/usr/include"
spirv="$dir/pkg/usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake"
v="$(header_version "$include")"
if [[ -z "$v" || "$v" -lt "$min_header" || ! -f "$spirv" ]]; then
  log "fetching trixie's libvulkan-dev and spirv-headers into $dir/pkg"
  apt_dir="$(mktemp -d)"
  trap 'rm -rf "$apt_dir"' EXIT
  mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/deb"
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: trixie' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    >"$apt_dir/parts/trixie.sources"
  opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/parts"
        -o "Dir::State::Lists=$apt_dir/lists" -o Debug::NoDropPrivs=1)
  apt-get "${opts[@]}" update -q >&2
  (cd "$apt_dir/deb" && apt-get "${opts[@]}" download libvulkan-dev spirv-headers >&2)
  rm -rf "$dir/pkg"
  mkdir -p "$dir"
  for deb in "$apt_dir"/deb/*.deb; do dpkg-deb -x "$deb" "$dir/pkg"; done
  v="$(header_version "$include")"
  [[ -n "$v" && "$v" -ge "$min_header" ]] || die "the fetched headers are 1.x.${v:-?}"
  [[ -f "$spirv" ]] || die "the fetched spirv-headers have no CMake package ($spirv)"
fi
log "Vulkan headers 1.x.$v and SPIRV-Headers in $dir/pkg/usr"
