#!/usr/bin/env bash
# Fetch the llama.cpp source that matches the llama-cpp-python version pinned in
# pyproject.toml: it comes from that version's sdist, which embeds vendor/llama.cpp.
# See third_party/README.md.
#
#   third_party/fetch_llama_cpp.sh               extract into third_party/llama.cpp/
#   third_party/fetch_llama_cpp.sh --print-dir   same, then print that path on stdout
#   third_party/fetch_llama_cpp.sh --trimmed DIR write a trimmed llama-cpp-python source
#                                                tree to DIR (for offline CUDA builds)
#
# Environment:
#   LLAMA_CPP_PYTHON_VERSION  override the version pinned in pyproject.toml
#   LLAMA_CPP_PYTHON_SDIST    use this local sdist (.tar.gz) instead of downloading
#   LLAMA_CPP_TRIM_BACKENDS   ggml backends kept by --trimmed (default: "cpu cuda")
#   PYTHON                    interpreter whose pip downloads (default: .venv/bin/python,
#                             else python3)
set -euo pipefail

prog=fetch_llama_cpp
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
dest="$here/llama.cpp"
stamp_name=".stars_cpp_version"
trim_stamp_name=".stars_cpp_trimmed"

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

usage() {
  cat <<'EOF'
usage: fetch_llama_cpp.sh [--print-dir] [--trimmed DIR] [-h|--help]

Extracts vendor/llama.cpp from the pinned llama-cpp-python sdist into
third_party/llama.cpp/ (skipped when already there for the same version).

  --print-dir    print the extracted llama.cpp directory on stdout (all other
                 messages go to stderr), e.g. LLAMA_DIR=$(fetch_llama_cpp.sh --print-dir)
  --trimmed DIR  also write a trimmed llama-cpp-python source tree to DIR that
                 pip can build offline with CUDA (see third_party/README.md)
EOF
}

print_dir=0
trimmed=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --print-dir) print_dir=1 ;;
    --trimmed)
      [[ $# -ge 2 && -n "$2" ]] || die "--trimmed needs a directory argument"
      trimmed="$2"
      shift ;;
    --trimmed=*) trimmed="${1#--trimmed=}"; [[ -n "$trimmed" ]] || die "--trimmed needs a directory" ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

# --- the version: one source of truth, the pin in pyproject.toml -------------------------
pinned_version() {
  local pyproject="$repo/pyproject.toml" versions n
  [[ -f "$pyproject" ]] || die "cannot read $pyproject (set LLAMA_CPP_PYTHON_VERSION to skip it)"
  versions="$(grep -oE 'llama[-_]cpp[-_]python==[^]"'"'"' ,;]+' "$pyproject" | sed 's/.*==//' | sort -u || true)"
  n="$(printf '%s' "$versions" | grep -c . || true)"
  [[ "$n" -ge 1 ]] || die "no 'llama-cpp-python==X' pin found in $pyproject"
  [[ "$n" -eq 1 ]] || die "$pyproject pins different llama-cpp-python versions: $(echo "$versions" | tr '\n' ' ')"
  printf '%s\n' "$versions"
}

if [[ -n "${LLAMA_CPP_PYTHON_VERSION:-}" ]]; then
  version="$LLAMA_CPP_PYTHON_VERSION"
else
  version="$(pinned_version)"
fi
[[ "$version" =~ ^[0-9][0-9A-Za-z.+!-]*$ ]] || die "not a version: '$version'"
stamp_line="llama-cpp-python==$version"

# --- temporary extraction dirs, removed on exit ----------------------------------------
tmpdirs=()
cleanup() {
  local d
  for d in "${tmpdirs[@]+"${tmpdirs[@]}"}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# --- the sdist ---------------------------------------------------------------------------
sdist=""
find_or_download_sdist() {
  if [[ -n "${LLAMA_CPP_PYTHON_SDIST:-}" ]]; then
    [[ -f "$LLAMA_CPP_PYTHON_SDIST" ]] || die "LLAMA_CPP_PYTHON_SDIST=$LLAMA_CPP_PYTHON_SDIST is not a file"
    sdist="$LLAMA_CPP_PYTHON_SDIST"
    log "using local sdist $sdist"
    return
  fi
  sdist="$here/llama_cpp_python-$version.tar.gz"
  if [[ -f "$sdist" ]]; then
    log "using cached $sdist"
    return
  fi
  local py dl found
  if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
  elif [[ -x "$repo/.venv/bin/python" ]]; then
    py="$repo/.venv/bin/python"
  else
    py=python3
  fi
  "$py" -m pip --version >/dev/null 2>&1 \
    || die "'$py -m pip' does not work: install pip, or set PYTHON to an interpreter that has it"
  dl="$(mktemp -d "$here/.download.XXXXXX")"
  tmpdirs+=("$dl")
  log "downloading the llama-cpp-python==$version sdist with $py -m pip (about 77 MB)"
  # pip also prepares the sdist's metadata, so it fetches the build backend
  # (scikit-build-core) into an isolated environment; nothing is compiled.
  if ! "$py" -m pip download --no-deps --no-binary :all: --disable-pip-version-check \
      -d "$dl" "llama-cpp-python==$version" >&2; then
    die "pip download of llama-cpp-python==$version failed (no network to the package index?
       Offline: put the sdist at $sdist or set LLAMA_CPP_PYTHON_SDIST=/path/to/it.tar.gz)"
  fi
  found="$(find "$dl" -maxdepth 1 -name '*.tar.gz' -print -quit)"
  [[ -n "$found" ]] || die "pip download produced no .tar.gz in $dl"
  mv "$found" "$sdist"
  log "saved $sdist ($(du -h "$sdist" | cut -f1))"
}

# Extract the whole sdist into a fresh temporary dir under third_party/ (same file
# system, so the final moves are renames) and set $top to its top-level directory.
top=""
extract_sdist() {
  local x
  x="$(mktemp -d "$here/.extract.XXXXXX")"
  tmpdirs+=("$x")
  tar -xzf "$sdist" -C "$x" || die "cannot extract $sdist (corrupt download? delete it and rerun)"
  top="$(find "$x" -mindepth 1 -maxdepth 1 -type d -print -quit)"
  [[ -n "$top" && -f "$top/vendor/llama.cpp/CMakeLists.txt" ]] \
    || die "$sdist has no vendor/llama.cpp/CMakeLists.txt: not a llama-cpp-python sdist?"
}

# The llama.cpp commit the sdist was made from: its git submodule HEAD.
sdist_commit() {
  local head="$top/.git/modules/vendor/llama.cpp/HEAD" c=""
  [[ -f "$head" ]] && c="$(tr -d '[:space:]' <"$head")"
  [[ "$c" =~ ^[0-9a-f]{40}$ ]] && printf '%s\n' "$c"
  return 0
}

# llama.cpp's cmake/build-info.cmake runs `git rev-parse --short HEAD` and
# `git rev-list --count HEAD` in its source dir to fill LLAMA_BUILD_COMMIT/NUMBER. In the
# sdist vendor/llama.cpp/.git is a gitlink into the sdist's own .git (39 MB); once moved it
# dangles, and with no .git at all git would report the enclosing repository's commit.
# So give the tree a minimal git dir: HEAD, the (shallow) commit object and nothing else.
# Builds then record the same commit and build number as the released wheel.
make_gitdir() {  # $1: llama.cpp dir, $2: commit (may be empty)
  local dir="$1" commit="$2" obj
  rm -rf "$dir/.git"
  obj="objects/${commit:0:2}/${commit:2}"
  if [[ -n "$commit" && -f "$top/.git/modules/vendor/llama.cpp/$obj" ]]; then
    mkdir -p "$dir/.git/objects/${commit:0:2}" "$dir/.git/refs/heads" "$dir/.git/refs/tags"
    cp "$top/.git/modules/vendor/llama.cpp/$obj" "$dir/.git/$obj"
    printf '%s\n' "$commit" >"$dir/.git/HEAD"
    printf '%s\n' "$commit" >"$dir/.git/shallow"
    printf '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n' >"$dir/.git/config"
  else
    warn "the sdist does not carry the llama.cpp commit object; pass -DLLAMA_BUILD_COMMIT=<hash>"
    warn "to cmake, or builds inside another git checkout record that checkout's commit"
  fi
}

# --- third_party/llama.cpp -----------------------------------------------------------------
stamp_matches() {
  [[ -f "$dest/$stamp_name" ]] && [[ "$(head -n1 "$dest/$stamp_name")" == "$stamp_line" ]]
}

ensure_extracted() {
  if stamp_matches; then
    log "$dest already holds llama.cpp of $stamp_line ($(sed -n 2p "$dest/$stamp_name"))"
    return
  fi
  find_or_download_sdist
  [[ -n "$top" ]] || extract_sdist
  local commit
  commit="$(sdist_commit)"
  local staged="$top/vendor/llama.cpp"
  make_gitdir "$staged" "$commit"
  printf '%s\nllama.cpp=%s\n' "$stamp_line" "${commit:-unknown}" >"$staged/$stamp_name"
  if [[ -e "$dest" ]]; then
    log "replacing $dest (it held $(head -n1 "$dest/$stamp_name" 2>/dev/null || echo 'no stamp'))"
    rm -rf "$dest"
  fi
  if [[ -n "$trimmed" ]]; then
    cp -a "$staged" "$dest"   # --trimmed still reads the staged tree
  else
    mv "$staged" "$dest"
  fi
  log "extracted llama.cpp ${commit:-(commit unknown)} to $dest ($(du -sh "$dest" | cut -f1))"
}

# --- --trimmed DIR -------------------------------------------------------------------------
make_trimmed() {
  local out="$1" keep="${LLAMA_CPP_TRIM_BACKENDS:-cpu cuda}" f d name commit
  if [[ -e "$out" ]]; then
    [[ -d "$out" ]] || die "--trimmed $out exists and is not a directory"
    if [[ -f "$out/$trim_stamp_name" ]]; then
      rm -rf "$out"   # a tree this script wrote before
    elif [[ -n "$(ls -A "$out")" ]]; then
      die "--trimmed $out exists and is not empty; refusing to overwrite it"
    fi
  fi
  find_or_download_sdist
  [[ -n "$top" ]] || extract_sdist
  mkdir -p "$out/vendor/llama.cpp"
  for f in CMakeLists.txt pyproject.toml README.md LICENSE.md llama_cpp; do
    [[ -e "$top/$f" ]] || die "the sdist lacks $f"
    cp -a "$top/$f" "$out/"
  done
  # LICENSE is not needed to build (cmake only warns without it) but MIT asks to keep it.
  for f in CMakeLists.txt LICENSE cmake src include common vendor ggml; do
    [[ -e "$top/vendor/llama.cpp/$f" ]] || die "the sdist lacks vendor/llama.cpp/$f"
    cp -a "$top/vendor/llama.cpp/$f" "$out/vendor/llama.cpp/"
  done
  for d in "$out"/vendor/llama.cpp/ggml/src/ggml-*/; do
    name="$(basename "$d")"
    name="${name#ggml-}"
    if [[ " $keep " != *" $name "* ]]; then
      rm -rf "$d"
    fi
  done
  commit="$(sdist_commit)"
  make_gitdir "$out/vendor/llama.cpp" "$commit"
  printf '%s\nllama.cpp=%s\nbackends=%s\n' "$stamp_line" "${commit:-unknown}" "$keep" \
    >"$out/$trim_stamp_name"
  log "trimmed llama-cpp-python==$version source tree (ggml backends: $keep) at $out"
  log "size: $(du -sh "$out" | cut -f1) ($(find "$out" -type f | wc -l) files)"
  log "build it offline, e.g.: CMAKE_ARGS=\"-DGGML_CUDA=ON -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF\" \\"
  log "  pip install --no-build-isolation --no-deps $out"
}

ensure_extracted
if [[ -n "$trimmed" ]]; then
  make_trimmed "$trimmed"
fi
if [[ "$print_dir" -eq 1 ]]; then
  printf '%s\n' "$dest"
fi
