# zoolab: `make demo` and `make test` set everything up on a fresh machine (Python 3.11, pip).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zoolab-installed
PYTEST_ARGS ?=
# On this machine pip takes torch/torchvision from local disk; never ask for newer releases than these.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Reports run on the embedded data with +smoke=cpu unless the real data root is set.
CHERRY_SMOKE := $(if $(CHERRY_ROOT),,+smoke=cpu)
STAMP_NOW := $(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: help install demo test test-slow bench reproduce-cherry clean

help:
	@echo "make demo              set up and train a cherry-pit classifier on the embedded data"
	@echo "make test              set up and run the test suite (no slow tests)"
	@echo "make test-slow         the slow tests too"
	@echo "make bench             benchmarks (training overhead, CPU latency)"
	@echo "make reproduce-cherry  the cherry-pit report's experiments and table"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m zoolab +exp=cherry_resnet18_aug_unnorm +smoke=cpu trainer.max_epochs=4 \
		hydra.run.dir=runs/demo/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results runs/demo/$(STAMP_NOW) --report cherry
	@echo "run folder: runs/demo/$(STAMP_NOW)"

test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/train_overhead.py
	$(BIN)/python benchmarks/cpu_latency.py

reproduce-cherry: install
	-$(BIN)/python -m zoolab -m '+exp=glob(cherry_*)' $(CHERRY_SMOKE) \
		hydra.sweep.dir=multirun/reproduce-cherry/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results multirun/reproduce-cherry/$(STAMP_NOW) --report cherry

clean:
	rm -rf runs .pytest_cache
