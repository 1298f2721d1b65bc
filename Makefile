# zoolab: `make demo` and `make test` set everything up on a fresh machine (Python 3.11, pip).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zoolab-installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` / `make test-slow`: one per core, at most 2 (`make test JOBS=0`
# runs in one process). Each worker is its own pytest session with its own tmp folder, so the session
# cache of synthetic data (tests/conftest.py cache_dir) is per worker; --dist loadfile keeps a test
# file's tests, and its module fixtures, on one worker.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 2 ] && n=2; echo $$n)
XDIST = -n $(JOBS) --dist loadfile
# On this machine pip takes torch/torchvision from local disk; never ask for newer releases than these.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Reports run on the embedded data with +smoke=cpu unless the real data root is set.
CHERRY_SMOKE := $(if $(CHERRY_ROOT),,+smoke=cpu)
STAMP_NOW := $(shell date +%Y-%m-%d_%H-%M-%S)
# Where the reproduce-* targets write. Into the repository's multirun/ only from committed code
# (committed-tree; ALLOW_DIRTY=1 goes on and marks the results as made from uncommitted code).
RESULTS_ROOT ?= multirun
# More overrides for every reproduce-* sweep, e.g. a launcher for the whole report:
#   make reproduce-classifier-sweep SWEEP_ARGS='hydra/launcher=joblib hydra.launcher.n_jobs=2'
SWEEP_ARGS ?=
# Classifier sweeps run on the embedded synthetic caches unless EMB_ROOT holds the real ones.
EMB_DATA := $(if $(EMB_ROOT),,dataset=synthetic_embeddings)
# Detection and re-ID reports: smoke runs on embedded data unless the real data root is set.
SARDET_RUN := $(if $(SARDET_ROOT),,+smoke=cpu)
REID_RUN := $(if $(HANDS_ROOT),,+smoke=cpu)   # real runs: CLIP_VITB16_WEIGHTS / CLIP_RN50_WEIGHTS files
# the report's benchmark plan B: top 3 backbones x MLP [768, 384] and [1024, 512], and the linear row
KNOB_EXPS := clf_dinov3_vitl16_mlp768_384,clf_dinov3_vitl16_mlp1024_512,clf_dinov3_vitb16_mlp768_384,clf_dinov3_vitb16_mlp1024_512,clf_clip_vitl14_mlp768_384,clf_clip_vitl14_mlp1024_512,clf_dinov3_vitl16_linear
GEN2_EXPS := clf_dinov3_vits16_mlp256,clf_dinov3_vits16_mlp384,clf_dinov3_vitb16_mlp512,clf_dinov3_vitb16_mlp768,clf_dinov3_vitl16_mlp768_384,clf_dinov3_vitl16_mlp1024_512

.PHONY: help install demo test test-slow bench reproduce-cherry reproduce-classifier-sweep \
	reproduce-classifier-second-gen reproduce-classifier-knobs reproduce-classifier-minimal reproduce-sardet reproduce-promptsg clean

help:
	@echo "make demo              set up and train a cherry-pit classifier on the embedded data"
	@echo "make test              set up and run the test suite (no slow tests; JOBS=2 workers)"
	@echo "make test-slow         the slow tests too"
	@echo "make bench             benchmarks: training overhead, CPU latency, head training, re-ID evaluation"
	@echo "make reproduce-cherry  the cherry-pit report's experiments and table"
	@echo "make reproduce-classifier-sweep       406-run embedding-classifier sweep and its tables"
	@echo "make reproduce-classifier-second-gen  36-run second-generation sweep"
	@echo "make reproduce-classifier-knobs       newer knobs A/B vs full (49 runs, incl. a logistic-regression row)"
	@echo "make reproduce-classifier-minimal     36-run minimal-baseline sweep + default-recipe run"
	@echo "make reproduce-sardet  SAR detection zoo (E0001-E0025; seeds 0,1,2 for E0002/E0003) and its two tables"
	@echo "make reproduce-promptsg  PromptSG chronologies v1-v11 on ViT-B/16 and RN50 + zero-shot baselines"
	@echo "                       (reproduce-*: RESULTS_ROOT=DIR writes elsewhere than multirun/;"
	@echo "                        SWEEP_ARGS='hydra/launcher=joblib hydra.launcher.n_jobs=2' runs jobs in parallel)"
	@echo "make ledger            docs/experiments.md and the merged results table"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev,detection,reid,scale,trackers,deploy,explain]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m zoolab +exp=cherry_resnet18_aug_unnorm +smoke=cpu trainer.max_epochs=4 \
		hydra.run.dir=runs/demo/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results runs/demo/$(STAMP_NOW) --report cherry
	@echo "run folder: runs/demo/$(STAMP_NOW)"

test: install
	$(BIN)/python -m pytest -m "not slow" $(XDIST) --durations=10 $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -m slow $(XDIST) $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/train_overhead.py
	$(BIN)/python benchmarks/cpu_latency.py
	$(BIN)/python benchmarks/classifier_sweep.py
	$(BIN)/python benchmarks/reid_eval.py
	$(BIN)/python benchmarks/sweep_launchers.py
	$(BIN)/python benchmarks/ddp_scaling.py --processes 2

reproduce-cherry: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=glob(cherry_*)' $(CHERRY_SMOKE) \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-cherry/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-cherry/$(STAMP_NOW) --report cherry

reproduce-classifier-sweep: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=glob(clf_*,exclude=[clf_default_recipe,clf_*_linear])' $(EMB_DATA) \
		profile=base,center_std,effective,hardmine,gelu_ln,calib,full loss.label_smoothing=0,0.1 \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-classifier-sweep/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-classifier-sweep/$(STAMP_NOW) --report classifier_sweep \
		--append-to $(RESULTS_ROOT)/classifier_metrics.tsv

reproduce-classifier-second-gen: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=$(GEN2_EXPS)' $(EMB_DATA) \
		profile=arcface,full,logit_both,logit_infer,logit_train,supcon \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-classifier-second-gen/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-classifier-second-gen/$(STAMP_NOW) --report classifier_second_gen \
		--append-to $(RESULTS_ROOT)/classifier_metrics.tsv

reproduce-classifier-knobs: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=$(KNOB_EXPS)' $(EMB_DATA) \
		profile=full,feature_aug,manifold_mixup,center,crt,supcon,supcon_cw \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-classifier-knobs/$(STAMP_NOW)
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-classifier-knobs/$(STAMP_NOW) --report classifier_knobs \
		--append-to $(RESULTS_ROOT)/classifier_metrics.tsv

reproduce-classifier-minimal: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=$(GEN2_EXPS)' $(EMB_DATA) \
		profile=baseline_minimal,logit_train,logit_both,logit_infer,arcface,supcon +stack=minimal \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-classifier-minimal/$(STAMP_NOW)
	-$(BIN)/python -m zoolab +exp=clf_default_recipe $(EMB_DATA) \
		hydra.run.dir=$(RESULTS_ROOT)/reproduce-classifier-minimal/$(STAMP_NOW)/default_recipe
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-classifier-minimal/$(STAMP_NOW) --report classifier_minimal \
		--append-to $(RESULTS_ROOT)/classifier_metrics.tsv

clean:
	rm -rf runs .pytest_cache

# Refuses (exit 1, one message) when RESULTS_ROOT is inside this checkout and the code is uncommitted.
.PHONY: committed-tree
committed-tree: install
	@$(BIN)/python -m zoolab.provenance --require-clean $(RESULTS_ROOT)

reproduce-sardet: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=glob(sardet_*,exclude=[sardet_vis_*,sardet_lora_r16_fc1fc2,sardet_linear_probe])' \
		$(SARDET_RUN) keep_last_ckpt=false $(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-sardet/$(STAMP_NOW)/single
	-$(BIN)/python -m zoolab -m '+exp=sardet_lora_r16_fc1fc2,sardet_linear_probe' seed=0,1,2 $(SARDET_RUN) keep_last_ckpt=false \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-sardet/$(STAMP_NOW)/seeds
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-sardet/$(STAMP_NOW) --report sardet

reproduce-promptsg: install committed-tree
	-$(BIN)/python -m zoolab -m '+exp=glob([promptsg_vitb16_*,clip_zeroshot_vitb16])' $(REID_RUN) \
		$(if $(CLIP_VITB16_WEIGHTS),backbone.weights=$(CLIP_VITB16_WEIGHTS),) keep_last_ckpt=false \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-promptsg/$(STAMP_NOW)/vitb16
	-$(BIN)/python -m zoolab -m '+exp=glob([promptsg_rn50_*,clip_zeroshot_rn50])' $(REID_RUN) \
		$(if $(CLIP_RN50_WEIGHTS),backbone.weights=$(CLIP_RN50_WEIGHTS),) keep_last_ckpt=false \
		$(SWEEP_ARGS) hydra.sweep.dir=$(RESULTS_ROOT)/reproduce-promptsg/$(STAMP_NOW)/rn50
	$(BIN)/python -m zoolab.results $(RESULTS_ROOT)/reproduce-promptsg/$(STAMP_NOW) --report promptsg

# docs/experiments.md: every experiment (conf/exp) and one results table merged from the sweeps under multirun/
.PHONY: ledger
ledger: install
	$(BIN)/python -m zoolab.artifacts ledger
