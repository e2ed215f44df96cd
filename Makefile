# osconnect: the two commands a new user needs are `make demo` and `make test`.
#   make          release build at build/osconnect
#   make test     install deps, build with ASan+UBSan in build-asan/, run every test
#                 (T=regex runs a subset; ASAN_DIR=dir picks another build folder)
#   make demo     install deps, build, run the connector against the simulator
#   make bench    delivery and presence benchmarks (figures printed)
#   make lint     clang-format check and cppcheck
#   make test-valgrind  the whole suite under valgrind memcheck (about 3 minutes)
#   make fuzz     libFuzzer harnesses, FUZZ_SECONDS each (clang)
#   make install  install binary, man page, completion, systemd units, sysusers/tmpfiles
#                 entries and /etc/osconnect/osconnect.yaml (PREFIX=/usr/local, DESTDIR)
#   make deb      build-deb/osconnect_<version>_<arch>.deb (debian/, debhelper), lintian
BUILD    ?= build
ASAN_DIR ?= build-asan
PREFIX   ?= /usr/local
DESTDIR  ?=
DEB_DIR  ?= build-deb
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
T        ?=

.PHONY: all deps build test test-valgrind demo bench lint install deb man fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DOSC_TESTS=OFF >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

test: deps build
	@cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DOSC_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_DIR) -j$(JOBS) -- --no-print-directory
	@cd $(ASAN_DIR) && ctest --output-on-failure -j$(JOBS) $(if $(T),-R '$(T)')
	@scripts/check-secrets.sh $(ASAN_DIR)/Testing/Temporary/LastTest.log

# Slow (memcheck is ~30x): not part of `make test`; VG_EXCLUDE=regex drops tests.
VG_DIR     ?= build-vg
VG_EXCLUDE ?=
test-valgrind:
	@scripts/install-deps.sh valgrind
	@cmake -S . -B $(VG_DIR) -DCMAKE_BUILD_TYPE=Debug -DOSC_VALGRIND=ON >/dev/null
	@cmake --build $(VG_DIR) -j$(JOBS) -- --no-print-directory
	@cd $(VG_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 900 $(if $(VG_EXCLUDE),-E '$(VG_EXCLUDE)') \
	    $(if $(T),-R '$(T)')

demo: deps build
	@scripts/demo.sh $(BUILD)/osconnect

bench: deps build
	@bench/run.sh $(BUILD)/osconnect

lint:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	    --std=c11 -Iinclude --suppress=missingIncludeSystem --suppress=unknownMacro src

# Configured with the prefix, since the systemd units name the binary's installed path.
install:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DOSC_TESTS=OFF \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# The .deb and everything dpkg-buildpackage writes stay in $(DEB_DIR)/.
deb:
	@JOBS=$(JOBS) scripts/build-deb.sh $(DEB_DIR)

# Each harness runs FUZZ_SECONDS (default 60) from its seed corpus in tests/fuzz/corpus/NAME.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/install-deps.sh clang libclang-rt-14-dev
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DOSC_FUZZ=ON -DOSC_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j$(JOBS) -- --no-print-directory
	@scripts/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

man: build
	@scripts/gen-man.sh $(BUILD)/osconnect docs/osconnect.1

clean:
	rm -rf $(BUILD) $(ASAN_DIR) $(VG_DIR) build-fuzz $(DEB_DIR)
