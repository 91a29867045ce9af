# README's two commands: `make quick` (train + evaluate the embedded default), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/dcam_quick
# glibc 2.35+: malloc asks for transparent huge pages, sparing XLA:CPU millions of page faults
# per large step (docs/performance.md); older glibc and kernels without THP ignore it.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

# The runtime: requirements.txt, and this repository as an editable package (so that
# `python -m jaxpr_gan.tools.X` works from any directory).
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Tests, linter and checkpoint conversion on top.
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-nodeps.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

.PHONY: install install-test quick test lint format clean
install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

quick: install
	$(PY) train.py --config configs/dcam.py:quick --workdir $(WORKDIR)
	$(PY) eval.py --workdir $(WORKDIR)

# --capture=sys: a native crash (XLA, tensorstore) still prints its own message to the log.
test: install-test
	$(PY) -m pytest -q --capture=sys -n 2 --dist loadfile --no-loadscope-reorder  # two workers; a file stays on one; files in conftest's order

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf workdirs .jax_cache
