# Thin wrapper over CMake + Ninja + ctest. `make run` sets up, builds and serves on the embedded
# defaults; `make test` runs every test (unit, end-to-end, hostile) and prints one ctest summary.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CMAKE_ARGS ?=
CTEST_ARGS ?= -j$(JOBS)
JOBS       ?= $(shell nproc)

.PHONY: all setup configure run test unit asan fuzz format check-format lint clean test-client

all: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

setup:
	@scripts/setup

run: setup all
	$(BUILD)/kiln serve

test: setup all
	cd $(BUILD) && ctest --output-on-failure $(CTEST_ARGS)

# The real LibreChat client (npm @librechat/agents 3.1.x and latest) against kiln; downloads
# ~500 MB per version, so not in CI. VERSIONS="3.1.63 3.9.2" picks others.
test-client: all
	scripts/test-client

unit: all
	cd $(BUILD) && ctest --output-on-failure -R '^unit/' $(CTEST_ARGS)

# The hostile suite's warm and zygote re-runs (label warm-variants) are left out under ASan: the CI
# budget (the plain build runs them).
asan: setup
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -LE warm-variants $(CTEST_ARGS)

fuzz: setup
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKILN_FUZZ=ON $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	scripts/fuzz-smoke $(FUZZ_BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

lint:
	scripts/check-banned

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
