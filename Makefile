# README's two commands: `make quick` (train + evaluate the embedded default), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/stargan_quick

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

.PHONY: install quick test clean
install: $(VENV)/.installed

quick: install
	$(PY) train.py --config configs/stargan.py:quick --workdir $(WORKDIR)
	$(PY) eval.py --config configs/stargan.py:quick --workdir $(WORKDIR)

test: install
	$(PY) -m pytest -q

clean:
	rm -rf workdirs .jax_cache
