# Thin wrapper over CMake so that `make`, `make demo` and `make test` work on a fresh machine.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all deps build demo test test-asan test-cpus test-aarch64 asan format bench clean wheel

all: build

deps:
	@bash tools/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	@bash tools/demo.sh $(BUILD)/attnscope

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# the build on emulated CPUs without AVX-512 and without AVX2 (qemu-user): the kernel path each
# chooses, the model and kernel tests, every fixture against transformers
test-cpus: build
	@bash tools/check_cpus.sh $(BUILD)

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DATS_SANITIZE=ON $(CMAKE_FLAGS)" build

test-asan: asan
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j$(JOBS)

wheel: deps
	@bash tools/wheel.sh

# Cross-compiled with Debian's aarch64 toolchain; the unit tests and the command-line check
# (tools/check_aarch64.sh) run under qemu-user. The Python reference tests, which start the
# command line thousands of times, would take far too long under qemu: they run in `make test`.
test-aarch64: deps
	@bash tools/deps_aarch64.sh
	@cmake -S . -B build-aarch64 -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/tools/aarch64-toolchain.cmake $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-aarch64 -j$(JOBS)
	@cd build-aarch64 && ctest -R '^unit\.' --no-tests=error --output-on-failure -j$(JOBS)
	@bash tools/check_aarch64.sh build-aarch64

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-aarch64
