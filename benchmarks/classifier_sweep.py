"""Embedding-classifier sweep cost: one head, zoolab vs plain PyTorch loop; and a sweep's wall time.

Part 1 (one head training, as one of the 406 sweep runs trains it). Both sides train an identical
``EmbeddingClassificationTask`` built as ``train_embedding_classifier`` builds it for
``+exp=clf_dinov3_vitl16_mlp1024_512 dataset=synthetic_embeddings`` (profile ``full``): the
``EmbeddingDataModule`` on the synthetic ``--encoder`` cache (under ``$ZOOLAB_CACHE``, else a temp dir;
balnorm, bg5, standardize, batch 256, shuffled), ``MLPHead`` [1024, 512] GELU + LayerNorm,
``LogitAdjustedCrossEntropy`` with effective-number class weights and label smoothing 0.1, input mixup
alpha 0.1, AdamW lr 1e-3 wd 1e-4 with the exp's cosine schedule, a fixed ``--epochs`` (no early
stopping, no checkpointing, no validation; calibration and evaluation come after training and are not
timed). This is the main phase of a ``full`` run: hard-example mining (a later phase of its own, whose
step differs only by a top-k over the per-sample losses) is off on both sides. The zoolab side is a
Lightning ``Trainer`` set up like ``conf/trainer/cpu.yaml`` with zoolab's CSV logger (temp dir) and its
default progress bar (rendered into /dev/null); the plain side is a hand loop on a twin task (same init:
state_dict copied) doing the same math: mixup, the same loss module, AdamW, a scheduler step per epoch.
Same batches and same mixup draws: each plain epoch starts from the global torch/numpy RNG state the
zoolab epoch started from (the zoolab run's state is restored afterwards), so both shuffle the same
DataLoader the same way and draw the same lambda and permutation per batch.

Measured: epoch time. zoolab: from one ``on_train_epoch_start`` to the next (the last epoch to
``on_train_end``), so it includes the steps, ``self.log``, epoch-end hooks, the CSV logger write and the
scheduler step; the plain twin epoch runs inside that span (before or after the zoolab epoch,
alternating per repeat) and its time, and the RNG bookkeeping, are subtracted. plain: around its
``for`` loop plus its scheduler step. Load bursts from other processes hit both sides alike; the first
epoch of each run is warm-up and discarded; medians over ``--repeats`` runs. Ratio is zoolab / plain
(1.00 = no overhead). Equality: max |parameter difference| after the first epoch pair (same math, ~0).

Part 2 (``--sweep-log PATH``, default the newest ``multirun/reproduce-classifier-sweep/*``): reads every
``run.json`` below the folder and prints runs ok/failed, the sweep wall time (first ``started`` to last
``ended``; Hydra's start-up before the first job and the results tables after the last are not in it),
the sum of the per-run phase seconds, and the per-run median.

    python benchmarks/classifier_sweep.py --threads 2 --epochs 20 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from train_overhead import cpu_model, max_param_diff  # noqa: E402 (benchmarks/ is sys.path[0])

REPO = Path(__file__).resolve().parents[1]
SWEEP_ROOT = REPO / "multirun" / "reproduce-classifier-sweep"
LR, WEIGHT_DECAY, MIXUP_ALPHA = 1.0e-3, 1.0e-4, 0.1


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side, order alternated")
    parser.add_argument("--encoder", default="dinov3_vitl16", help="synthetic embedding cache family")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sweep-log", metavar="PATH", default=None,
                        help="finished sweep folder (default: newest multirun/reproduce-classifier-sweep/*)")
    return parser


# ----------------------------------------------------------------------------------------- part 1
def build_datamodule(encoder: str, cache_dir: str):
    from zoolab.data.embedding_datamodule import EmbeddingDataModule
    from zoolab.data.synthetic.embeddings import synthetic_embedding_cache

    cache = synthetic_embedding_cache(encoder, cache_dir=cache_dir)
    dm = EmbeddingDataModule(cache=cache, name="qwen_dataset", encoder=encoder, background="background", bg=5,
                             balnorm=True, standardize="standardize", batch_size=256, sampler="natural")
    dm.setup()
    return dm


def build_task(dm, epochs: int):
    """The task as ``train_embedding_classifier`` instantiates it for the exp with profile ``full``
    (hard mining off: see the module docstring)."""
    from zoolab.heads.mlp import MLPHead
    from zoolab.losses.long_tail import LogitAdjustedCrossEntropy
    from zoolab.tasks.embedding_cls import EmbeddingClassificationTask

    task = EmbeddingClassificationTask(
        head=partial(MLPHead, hidden=[1024, 512], activation="gelu", norm="layernorm", dropout=0.0),
        loss=LogitAdjustedCrossEntropy(label_smoothing=0.1, tau=1.0),
        optimizer=partial(torch.optim.AdamW, lr=LR, weight_decay=WEIGHT_DECAY),
        scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=epochs, eta_min=0.0),
        class_names=dm.class_names, in_features=dm.dim, train_counts=dm.train_counts(),
        background=dm.background if dm.background_index is not None else None,
        class_weights="effective", beta=0.9999, mixup_alpha=MIXUP_ALPHA, hard_mining_epochs=0,
        calibrate=False)
    task.feature_std.copy_(dm.tensors["train"][0].std(0))
    return task


def build_pair(dm, epochs: int, seed: int):
    torch.manual_seed(seed)
    zoo = build_task(dm, epochs)
    torch.manual_seed(seed)
    ref = build_task(dm, epochs)
    ref.load_state_dict(zoo.state_dict())
    return zoo, ref


def rng_state():
    return torch.get_rng_state(), np.random.get_state()


def set_rng_state(state) -> None:
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])


class PlainLoop:
    """Hand-written loop on the twin task's head and loss module: mixup, AdamW, cosine."""

    def __init__(self, task, dm, epochs: int) -> None:
        self.task, self.head, self.loss_fn = task, task.head, task.loss_fn
        self.num_classes = len(task.class_names)
        self.loader = dm.loader("train", shuffle=True)  # what EmbeddingDataModule.train_dataloader returns
        # configure_optimizers' single group (no center loss here)
        self.optimizer = torch.optim.AdamW([{"params": list(task.parameters())}], lr=LR,
                                           weight_decay=WEIGHT_DECAY)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs, eta_min=0.0)
        self.times: list[float] = []

    def epoch(self) -> None:
        head, loss_fn, optimizer = self.head, self.loss_fn, self.optimizer
        head.train()
        total = torch.zeros(())
        t0 = time.perf_counter()
        for x, y in self.loader:
            lam = float(np.random.beta(MIXUP_ALPHA, MIXUP_ALPHA))
            perm = torch.randperm(x.shape[0])
            target = nn.functional.one_hot(y, self.num_classes).float()
            target = lam * target + (1 - lam) * target[perm]
            logits = head(lam * x + (1 - lam) * x[perm])
            loss = loss_fn(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        self.scheduler.step()
        float(total)
        self.times.append(time.perf_counter() - t0)


def make_bench_callback(plain: PlainLoop, plain_first: bool, fit_state):
    """Times zoolab epochs and runs the plain twin epoch next to each, from the same RNG state.

    ``fit_state`` is the RNG state just before ``trainer.fit``: epoch 0's DataLoader iterator is created
    before ``on_train_epoch_start`` (in ``FitLoop.setup_data``), later ones after it.
    """
    import lightning as L

    class BenchCallback(L.Callback):
        def __init__(self) -> None:
            self.paused = 0.0  # time spent on the plain twin and bookkeeping, not zoolab's
            self.marks: list[float] = []
            self.epoch_state = fit_state
            self.diff: float | None = None
            self.moved: float | None = None
            self._init = [p.detach().clone() for p in plain.head.parameters()]

        def _clock(self) -> float:
            return time.perf_counter() - self.paused

        def _twin(self) -> None:
            t0 = time.perf_counter()
            current = rng_state()
            set_rng_state(self.epoch_state)
            plain.epoch()
            set_rng_state(current)
            self.paused += time.perf_counter() - t0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.marks.append(self._clock())  # closes the previous epoch
            t0 = time.perf_counter()
            if trainer.current_epoch > 0:
                self.epoch_state = rng_state()
            self.paused += time.perf_counter() - t0
            if plain_first:
                self._twin()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if not plain_first:
                self._twin()
            if self.diff is None:
                t0 = time.perf_counter()
                self.diff = max_param_diff(pl_module, plain.task)
                self.moved = max(float((p.detach() - q).abs().max())
                                 for p, q in zip(plain.head.parameters(), self._init))
                self.paused += time.perf_counter() - t0

        def on_train_end(self, trainer, pl_module) -> None:
            self.marks.append(self._clock())

        @property
        def times(self) -> list[float]:
            return [b - a for a, b in zip(self.marks, self.marks[1:])]

    return BenchCallback()


def run_pair(zoo, ref, dm, epochs: int, plain_first: bool):
    """Fit ``zoo`` with a Trainer like conf/trainer/cpu.yaml (CSV logger, progress bar), interleaving twin
    epochs of ``ref``."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    plain = PlainLoop(ref, dm, epochs)
    bench = make_bench_callback(plain, plain_first, fit_state=rng_state())
    with tempfile.TemporaryDirectory(prefix="zoolab_bench_") as tmp, open(os.devnull, "w") as null:
        trainer = L.Trainer(
            accelerator="cpu", devices=1, precision="32-true", max_epochs=epochs, log_every_n_steps=10,
            num_sanity_val_steps=0, enable_model_summary=False, deterministic=False, gradient_clip_val=None,
            limit_train_batches=None, limit_val_batches=0,
            logger=CSVLogger(save_dir=tmp, name="", version=""), enable_checkpointing=False,
            callbacks=[bench], default_root_dir=tmp,
        )
        # the progress bar still renders (zoolab's default), into /dev/null
        with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            trainer.fit(zoo, datamodule=dm)
    return bench, plain


def train_benchmark(args: argparse.Namespace) -> None:
    import lightning

    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    load_before = os.getloadavg()

    with contextlib.ExitStack() as stack:
        cache_dir = os.environ.get("ZOOLAB_CACHE") or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="zoolab_cache_"))
        dm = build_datamodule(args.encoder, cache_dir)
    n_train = len(dm.tensors["train"][1])
    times = {"zoolab": [], "plain": []}
    diffs, moved, init_diff = [], [], 0.0
    for r in range(args.repeats):
        lightning.seed_everything(args.seed + r, verbose=False)
        zoo, ref = build_pair(dm, args.epochs, args.seed + r)
        init_diff = max(init_diff, max_param_diff(zoo, ref))
        bench, plain = run_pair(zoo, ref, dm, args.epochs, plain_first=r % 2 == 1)
        assert len(bench.times) == len(plain.times) == args.epochs, (bench.times, plain.times)
        times["zoolab"].extend(bench.times[1:])
        times["plain"].extend(plain.times[1:])
        diffs.append(bench.diff)
        moved.append(bench.moved)
        if torch.get_num_threads() != args.threads:
            raise RuntimeError(f"thread count changed to {torch.get_num_threads()} during the run")

    med = {side: statistics.median(v) for side, v in times.items()}
    pair = [z / p for z, p in zip(times["zoolab"], times["plain"])]
    steps = math.ceil(n_train / dm.batch_size)
    print(f"one head training: {args.encoder} (dim {dm.dim}) synthetic cache, {n_train} train embeddings, "
          f"{steps} steps/epoch | MLP [1024, 512] GELU+LN, profile full, LS 0.1, mixup {MIXUP_ALPHA}, "
          f"no hard mining, AdamW lr {LR:g} wd {WEIGHT_DECAY:g}, cosine")
    print(f"threads {args.threads} | {args.epochs} epochs (first discarded) x {args.repeats} repeats, "
          f"zoolab/plain epochs interleaved, order alternated")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical) | torch {torch.__version__} | lightning "
          f"{lightning.__version__} | load avg 1-min before/after "
          f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}")
    for side in ("plain", "zoolab"):
        print(f"{side:<7} median epoch {med[side] * 1e3:8.2f} ms  ({med[side] / steps * 1e3:.2f} ms/step, "
              f"{len(times[side])} epochs)")
    print(f"ratio zoolab/plain: epoch {med['zoolab'] / med['plain']:.3f} (median of paired epochs "
          f"{statistics.median(pair):.3f})  (target <= 1.15)")
    print(f"equality: max |param zoolab - plain| after 1 epoch = {max(diffs):.3e} "
          f"(at init {init_diff:.1e}; that epoch moved params by up to {min(moved):.1e})")


# ----------------------------------------------------------------------------------------- part 2
def newest_sweep() -> Path | None:
    folders = sorted(p for p in SWEEP_ROOT.glob("*") if p.is_dir()) if SWEEP_ROOT.is_dir() else []
    return folders[-1] if folders else None


def sweep_summary(folder: Path) -> None:
    from zoolab.results.aggregate import find_runs

    runs = []
    for run_dir in find_runs(folder):
        try:
            runs.append(json.loads((run_dir / "run.json").read_text()))
        except (OSError, ValueError):
            runs.append({"status": "unreadable"})
    status = {}
    for run in runs:
        status[run.get("status")] = status.get(run.get("status"), 0) + 1
    started = [dt.datetime.fromisoformat(r["started"]) for r in runs if r.get("started")]
    ended = [dt.datetime.fromisoformat(r["ended"]) for r in runs if r.get("ended")]
    done = [r for r in runs if r.get("status") in ("ok", "failed")]
    phase_sums = [sum((r.get("seconds") or {}).values()) for r in done]
    walls = [(dt.datetime.fromisoformat(r["ended"]) - dt.datetime.fromisoformat(r["started"])).total_seconds()
             for r in runs if r.get("started") and r.get("ended")]
    phases: dict[str, float] = {}
    for r in done:
        for name, sec in (r.get("seconds") or {}).items():
            phases[name] = phases.get(name, 0.0) + sec

    others = {k: v for k, v in status.items() if k not in ("ok", "failed")}
    print(f"sweep {folder}")
    print(f"runs: {len(runs)} | ok {status.get('ok', 0)} | failed {status.get('failed', 0)}"
          + "".join(f" | {k} {v}" for k, v in others.items())
          + ("  (UNFINISHED: runs still running, or killed)" if others.get("running") else ""))
    if not done or not ended:
        print("no finished run yet")
        return
    wall = (max(ended) - min(started)).total_seconds()
    print(f"sweep wall time (first started -> last ended): {wall / 60:.1f} min ({wall:.0f} s)  "
          f"(target < 30 min on 2 CPU cores)")
    print(f"sum of per-run phase seconds: {sum(phase_sums) / 60:.1f} min ({sum(phase_sums):.0f} s; "
          + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()) + ")")
    print(f"per-run median: phase seconds {statistics.median(phase_sums):.2f} s, run.json wall "
          f"{statistics.median(walls):.0f} s (1-s resolution) | wall - phase sum = "
          f"{wall - sum(phase_sums):.0f} s outside the timed phases (job set-up, file writes, between jobs)")


def main(argv: list[str] | None = None) -> None:
    torch.set_flush_denormal(True)  # first torch call, so OpenMP workers inherit FTZ/DAZ
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2 (the first epoch is discarded as warm-up)")
    train_benchmark(args)
    folder = Path(args.sweep_log) if args.sweep_log else newest_sweep()
    print()
    if folder is None or not folder.is_dir():
        print(f"no sweep folder ({args.sweep_log or SWEEP_ROOT / '*'}): run make reproduce-classifier-sweep")
    else:
        sweep_summary(folder)


if __name__ == "__main__":
    sys.exit(main())
