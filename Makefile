# One command each, on a fresh machine: `make demo` (main job) and `make test` (test suite).
# Both create the virtual environment in .venv/ first if it is missing or out of date.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test venv bench clean-runs

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "tfdphpe needs Python 3.11 (TensorFlow 2.15 + TF-Privacy 0.9)"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/python -m pip check
	touch $(STAMP)

SYNTH := data/synthetic

demo: $(STAMP)
	test -f $(SYNTH)/private/info.json || $(VENV)/bin/python scripts/make_synthetic.py \
		--out=$(SYNTH)/private --num_train=600 --num_val=150 --seed=0
	test -f $(SYNTH)/public/info.json || $(VENV)/bin/python scripts/make_synthetic.py \
		--out=$(SYNTH)/public --num_train=600 --num_val=0 --seed=1
	$(VENV)/bin/python scripts/train.py --flagfile=configs/quickstart.flags
	$(VENV)/bin/python scripts/export.py --checkpoint=runs/quickstart --name=quickstart \
		--version=1 --overwrite --tflite=float16

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -n 2 tests

bench: $(STAMP)
	$(VENV)/bin/python scripts/bench_model.py
