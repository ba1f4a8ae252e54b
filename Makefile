# One command each, on a fresh machine: `make demo` (main job) and `make test` (test suite).
# Both create the virtual environment in .venv/ first if it is missing or out of date.
# Python: the newest supported one on the machine (3.13 > 3.12 > 3.11; pyproject.toml picks the
# stack by version: 3.11 -> TF 2.15, >= 3.12 -> TF 2.21), or PYTHON=... VENV=... to choose.
PYTHON ?= $(shell scripts/find_python.sh)
VENV ?= .venv
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STAMP := $(VENV)/.installed-stamp-$(PYVER)
# Fast files that cover the stack's compatibility points (TF-Privacy pieces, dp-accounting,
# Keras 2 optimizer, TFLite conversion and the LiteRT/tf.lite interpreter).
QUICK_TESTS := tests/privacy/test_optimizers.py tests/privacy/test_accounting.py \
	tests/export/test_tflite.py

.PHONY: demo test test-quick venv bench clean-runs

venv: $(STAMP)

# TF-Privacy 0.9.0 declares Python < 3.12 and old pins: on 3.11 its line below is a no-op
# (pyproject installed it), on the TF 2.21 stack it adds the package without its dependencies;
# pip check then ignores only TF-Privacy's own metadata (old TF, dp-accounting 0.4.3, numpy 1.x).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), "tfdphpe supports Python 3.11-3.13, not %d.%d" % sys.version_info[:2]'
	test "$$($(VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$(PYVER)" \
		|| $(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/python -m pip install --quiet --no-deps --ignore-requires-python tensorflow-privacy==0.9.0
	$(VENV)/bin/python -m pip check | grep -v -e '^tensorflow-privacy 0.9.0 ' -e '^No broken' | (! grep .)
	rm -f $(VENV)/.installed-stamp*
	touch $(STAMP)

# The demo: the shipped public model (tfdphpe/models/pretrained/), fine-tuned with DP at
# epsilon 1 on the private synthetic set beside a non-private fine-tune (docs/demo.md).
DEMO_PRIVATE := data/synthetic/demo_private

demo: $(STAMP)
	test -f $(DEMO_PRIVATE)/info.json || $(VENV)/bin/python scripts/make_synthetic.py \
		--flagfile=configs/demo/private_data.flags
	$(VENV)/bin/python scripts/demo.py --data_dir=$(DEMO_PRIVATE)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -n 2 tests

test-quick: $(STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider -n 2 $(QUICK_TESTS)

bench: $(STAMP)
	$(VENV)/bin/python scripts/bench_model.py
