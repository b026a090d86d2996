# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := out/demo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-slow test-corpus test-browser bench bench-deeplab bench-large bench-onnx fixtures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,onnx,keras2]'
	touch $(STAMP)

fixtures: $(STAMP)
	$(BIN)/python -m fixtures.build $(DEMO) mobilenet_v1 mobilenet_v1_bn_training onnx_bn_training

## demo: build two MobileNet fixtures and check both (one clean, one with BN left in training mode), then fix
## the second (recalibrated, BN folded) and check the fixed graph (exit 0); then the same for an ONNX MobileNetV2
## exported from train() mode: check it, fix it (BN in inference mode, folded into the convolutions), check it again
demo: fixtures
	$(BIN)/batchcheck check $(DEMO)/mobilenet_v1/model.pb
	@echo
	@$(BIN)/batchcheck check $(DEMO)/mobilenet_v1_bn_training/model.pb --json $(DEMO)/report.json \
		|| echo "(exit $$?: batch-dependent, as expected for this fixture; JSON report: $(DEMO)/report.json)"
	@echo
	$(BIN)/batchcheck fix $(DEMO)/mobilenet_v1_bn_training/model.pb -o $(DEMO)/mobilenet_v1_fixed.pb \
		--calibrate fixtures/images --fold-bn --json $(DEMO)/fix.json
	@echo
	$(BIN)/batchcheck check $(DEMO)/mobilenet_v1_fixed.pb
	@echo
	@$(BIN)/batchcheck check $(DEMO)/onnx_bn_training/model.onnx --json $(DEMO)/onnx_report.json \
		|| echo "(exit $$?: batch-dependent, as expected for this fixture; JSON report: $(DEMO)/onnx_report.json)"
	@echo
	$(BIN)/batchcheck fix $(DEMO)/onnx_bn_training/model.onnx -o $(DEMO)/onnx_fixed.onnx --fold-bn \
		--json $(DEMO)/onnx_fix.json
	@echo
	$(BIN)/batchcheck check $(DEMO)/onnx_fixed.onnx

## test: the default suite (tiny fixtures, < 15 min on 2 cores)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

## test-slow: full-size models (Keras MobileNetV2/V3 at 224 px)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

## test-corpus: the whole mutation corpus (every clean graph with each known batch dependence injected: check names
## it, lint finds it, fix undoes it); `python benchmarks/mutation_score.py` prints the score
test-corpus: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow' -n 2 --dist loadgroup -q tests/test_mutations.py

## test-browser: report pages in headless Chromium (installs Debian's chromium package when missing)
test-browser: $(STAMP)
	@command -v chromium >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	$(BIN)/python -m pytest -q -m browser tests/test_browser.py

## bench: speed and memory against plain forward passes and the naive approach
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_check.py

## bench-deeplab: a 513 px DeepLabV3 MobileNetV2 core checked with --trials 8 (default batch sizes) against plain
## forward passes of the same plans, with the check's profile
bench-deeplab: $(STAMP)
	$(BIN)/python benchmarks/bench_check.py --net deeplab --profile

## bench-large: cost per node on chains of 1k/5k/10k nodes and a Keras NASNetMobile, against plain forward passes
bench-large: $(STAMP)
	$(BIN)/python benchmarks/bench_large.py

## bench-onnx: an ONNX MobileNetV2 at 224 px (--batch-sizes 32 --trials 12) and chains of 1k/2.5k/5k nodes, against
## plain onnxruntime forward passes of the same plans
bench-onnx: $(STAMP)
	$(BIN)/python benchmarks/bench_onnx.py

clean:
	rm -rf $(VENV) out
