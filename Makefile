# make train [ARGS="experiment=celeba trainer.max_epochs=10"]    make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install train test bench lint clean

# (Re)install when pyproject.toml changes; the stamp file keeps repeated `make train` instant.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) -m dcgan_lit.train $(ARGS)

test: install
	$(PY) -m pytest -q

# GPU throughput: the PyTorch tutorial as written vs dcgan_lit, same run (see BENCHMARKS.md). ARGS="--num-images 20000"
bench: install
	$(PY) benchmarks/throughput.py $(ARGS)

lint: install
	$(PY) -m ruff check dcgan_lit tests benchmarks
	$(PY) -m ruff format --check dcgan_lit tests benchmarks

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
