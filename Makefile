# README's two commands: `make quick` (train + evaluate the embedded default), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/stargan_quick
# glibc 2.35+: malloc asks for transparent huge pages, sparing XLA:CPU millions of page faults
# per large step (docs/benchmarks.md); older glibc and kernels without THP ignore it.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

$(VENV)/.installed: requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

.PHONY: install quick test clean
install: $(VENV)/.installed

quick: install
	$(PY) train.py --config configs/stargan.py:quick --workdir $(WORKDIR)
	$(PY) eval.py --config configs/stargan.py:quick --workdir $(WORKDIR)

# --capture=sys: a native crash (XLA, tensorstore) still prints its own message to the log.
test: install
	$(PY) -m pytest -q --capture=sys -n 2 --dist loadfile  # two workers; a file stays on one

clean:
	rm -rf workdirs .jax_cache
