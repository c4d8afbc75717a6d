# The two commands of the README: `make bench` and `make test`. Both set up
# .venv (Python 3.11+) and install the project into it, building the C runtime.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
REFERENCE_STAMP := $(VENV)/.installed-reference
SOURCES := pyproject.toml setup.py $(wildcard runtime/*.py runtime/src/*.c runtime/src/*.h)
CC ?= cc
CWARN := -std=c11 -Wall -Wextra -Werror -pthread

.PHONY: bench test test-all setup setup-test setup-reference browser sanitize asan-runtime warnings arm docs clean

bench: setup
	$(VENV)/bin/ternbench run configs/default.yaml
	$(VENV)/bin/ternbench report results/latest --out reports/latest

# `make test` is the loop a developer runs on every change (about 6 minutes on 2 cores, set-up
# included); `make test-all` (which .ci/run runs) adds the slow tests and the sanitizer's passes.
# docs/tests.md says what differs.
test: setup-test warnings browser
	$(VPY) -m pytest -q -m "not slow"

test-all: setup-test setup-reference warnings browser
	$(VPY) -m pytest -q
	$(MAKE) --no-print-directory sanitize

setup: $(STAMP)

# The test extra (pytest, hypothesis, mkdocs) on top of setup, and for `make test-all` the
# reference extra (torch and transformers, for the independent check against transformers),
# without rebuilding the runtime: `make bench` and `make test` need not download torch.
setup-test: $(TEST_STAMP)
setup-reference: $(REFERENCE_STAMP)

# The report tests load the HTML in Debian's headless Chromium: install it when missing
# (needs root, as in CI; elsewhere the test says how to install it).
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { echo "== installing chromium for the report tests"; export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

$(STAMP): $(SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ternbench needs Python 3.11 or newer; this is " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -e .
	touch $@

EXTRA = $(VPY) -c 'import subprocess, sys, tomllib; extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][sys.argv[1]]; sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *extra]))'
$(TEST_STAMP): $(STAMP)
	$(EXTRA) test
	touch $@

$(REFERENCE_STAMP): $(STAMP)
	$(EXTRA) reference
	touch $@

# The runtime's C must compile warning-free with -Wall -Wextra (each file alone,
# so per-file ISA pragmas are exercised the way the real build uses them).
warnings:
	@case "$$(uname -m)" in x86_64) arch=x86;; aarch64) arch=arm;; *) arch=none;; esac; \
	  { ls runtime/src/*.c | grep -Ev 'kern_(x86|arm)_'; ls runtime/src/kern_$${arch}_*.c 2>/dev/null; } | \
	  xargs -P "$$(nproc)" -I{} $(CC) $(CWARN) -O3 -c {} -o /dev/null
	@echo "C sources compile warning-free"

# A copy of the runtime built with ASan + UBSan, for `make sanitize`.
ASAN_RUN := ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" PYTHONPATH=build/asan
asan-runtime: setup-test
	rm -rf build/asan
	$(VPY) runtime/build_ffi.py --sanitize build/asan >/dev/null
	cp runtime/*.py build/asan/runtime/

# In make test-all: the kernel, model and hazard tests against the sanitized runtime, and the C
# test driver (every variant against scalar, the whole shape grid) built the same way. The driver
# alone took 12 min on a contended 2-vCPU Xeon, which is why make test leaves this out.
sanitize: asan-runtime
	$(ASAN_RUN) $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_model.py \
	  tests/test_runtime_hazards.py --expect-runtime build/asan
	tests/c/run_native.sh

# The manual (docs/, mkdocs.yml) into site/. --strict: a broken link or anchor, or a page left
# out of the nav, fails the build. mkdocs comes with the test extra, which `make setup-test` installs.
docs: setup-test
	$(VPY) -m mkdocs build --strict --site-dir site

# The AArch64 kernels (neon, dotprod) under qemu-user: needs gcc-aarch64-linux-gnu,
# qemu-user and libc6-dev-arm64-cross (Debian packages; .ci/run installs them).
arm:
	tests/c/run_arm_emulated.sh

clean:
	rm -rf build site $(VENV) runtime/_rt*.so runtime/_rt.c *.egg-info
