"""Training-loop overhead of zoolab (Lightning) vs a plain PyTorch loop, same model and same batches.

Both sides train an identical ``ImageClassificationTask`` (timm backbone, full fine-tune, linear head,
cross-entropy, AdamW with zoolab's weight-decay-free group for 1-d parameters) from the same init on
the same in-memory uint8 batches (a TensorDataset DataLoader, no workers, no shuffle, so no image
decoding is timed). The zoolab side is a Lightning ``Trainer`` set up like ``conf/trainer/cpu.yaml``
with zoolab's default CSV logger; the plain side is a hand-written
``forward -> loss -> zero_grad -> backward -> step`` loop.

Measured, per side:
  * step time: from the moment a batch is in hand to the end of the optimiser step (Lightning:
    ``on_train_batch_start`` -> ``on_train_batch_end``; it includes ``training_step``, the torchmetrics
    updates and ``self.log`` calls, the closure, backward and ``optimizer.step``);
  * epoch time: ``on_train_epoch_start`` -> ``on_train_epoch_end`` (plain: around the ``for`` loop),
    which adds what happens between steps (batch fetching, hooks, logger bookkeeping).
Each Lightning epoch has a plain twin epoch run right before or after it, outside its timed window
(a callback runs it), so bursts of load from other processes on a shared machine hit both sides
alike; the first epoch of each side is warm-up and discarded, runs are repeated ``--repeats`` times
alternating which side goes first, and medians are reported. Ratios are zoolab / plain (1.00 = no
overhead). Equality check: after the first epoch pair both models have trained one epoch from the
same init on the same batches; the max |difference| of their parameters is printed (same math, ~0).

    python benchmarks/train_overhead.py --model resnet18 --threads 2 --epochs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from functools import partial

import torch
from torch import nn


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="timm architecture name")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="square input side in pixels")
    parser.add_argument("--batches", type=int, default=30, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, order alternated")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def build_task(args: argparse.Namespace):
    """The task exactly as zoolab's ``build_task`` would instantiate it from the config groups."""
    from zoolab.adapters.freeze import FullFineTune
    from zoolab.backbones.timm_backbone import TimmBackbone
    from zoolab.heads.linear import LinearHead
    from zoolab.tasks.image_cls import ImageClassificationTask

    return ImageClassificationTask(
        backbone=TimmBackbone(name=args.model, pretrained=False, input_size=args.size, normalize=True),
        adapter=FullFineTune(),
        head=partial(LinearHead),
        loss=nn.CrossEntropyLoss(),
        optimizer=partial(torch.optim.AdamW, lr=1.0e-4, weight_decay=0.01),
        scheduler=None,
        class_names=["cherry_clean", "cherry_pit"],
        latency={"enabled": False},
    )


def build_pair(args: argparse.Namespace):
    """Two independent tasks with identical initial weights (same seed, then state_dict copied)."""
    torch.manual_seed(args.seed)
    zoo = build_task(args)
    torch.manual_seed(args.seed)
    ref = build_task(args)
    ref.load_state_dict(zoo.state_dict())
    return zoo, ref


def make_loader(args: argparse.Namespace) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(args.seed + 1)
    n = args.batches * args.batch_size
    images = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    dataset = torch.utils.data.TensorDataset(images, labels)
    return torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=0)


class PlainLoop:
    """Hand-written loop on an identical task's own modules, loss and parameter groups."""

    def __init__(self, task, loader) -> None:
        self.task, self.loader = task, loader
        self.optimizer = torch.optim.AdamW(task.param_groups(), lr=1.0e-4, weight_decay=0.01)
        self.steps: list[list[float]] = []
        self.epochs: list[float] = []

    def epoch(self) -> None:
        backbone, head, loss_fn, optimizer = self.task.backbone, self.task.head, self.task.loss_fn, self.optimizer
        backbone.train()
        head.train()
        steps = []
        with torch.enable_grad():
            t_epoch = time.perf_counter()
            for x, y in self.loader:
                t0 = time.perf_counter()
                logits = head(backbone(x))
                loss = loss_fn(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps.append(time.perf_counter() - t0)
            self.epochs.append(time.perf_counter() - t_epoch)
        self.steps.append(steps)


def make_bench_callback(plain: PlainLoop, plain_first: bool):
    """Lightning callback timing zoolab's steps and epochs and running one plain epoch next to each.

    The plain epoch runs outside zoolab's timed windows: before ``on_train_epoch_start`` starts the
    clock (``plain_first``) or after ``on_train_epoch_end`` stops it, so each zoolab epoch has a plain
    twin run seconds apart. After the first pair both models have seen exactly one epoch: compare.
    """
    import lightning as L

    class BenchCallback(L.Callback):
        def __init__(self) -> None:
            self.steps: list[list[float]] = []
            self.epochs: list[float] = []
            self.diff: float | None = None
            self.moved: float | None = None
            self._init = [p.detach().clone() for p in plain.task.parameters()]

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if plain_first:
                plain.epoch()
            self.steps.append([])
            self._epoch_t0 = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._step_t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.steps[-1].append(time.perf_counter() - self._step_t0)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.epochs.append(time.perf_counter() - self._epoch_t0)
            if not plain_first:
                plain.epoch()
            if self.diff is None:
                self.diff = max_param_diff(pl_module, plain.task)
                self.moved = max(float((p.detach() - q).abs().max())
                                 for p, q in zip(plain.task.parameters(), self._init))

    return BenchCallback()


def run_pair(zoo, ref, loader, epochs: int, plain_first: bool):
    """Fit ``zoo`` with a Trainer configured like conf/trainer/cpu.yaml (zoolab's CSV logger), with a
    plain epoch of ``ref`` interleaved next to each Lightning epoch."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    plain = PlainLoop(ref, loader)
    bench = make_bench_callback(plain, plain_first)
    with tempfile.TemporaryDirectory(prefix="zoolab_bench_") as tmp:
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            precision="32-true",
            max_epochs=epochs,
            log_every_n_steps=10,
            num_sanity_val_steps=0,
            enable_model_summary=False,
            deterministic=False,
            gradient_clip_val=None,
            limit_val_batches=0,
            logger=CSVLogger(save_dir=tmp, name="", version=""),
            enable_checkpointing=False,
            enable_progress_bar=False,
            callbacks=[bench],
            default_root_dir=tmp,
        )
        trainer.fit(zoo, train_dataloaders=loader)
    return bench, plain


def max_param_diff(a: nn.Module, b: nn.Module) -> float:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    return max(float((pa[k].detach() - pb[k].detach()).abs().max()) for k in pa)


def main(argv: list[str] | None = None) -> None:
    torch.set_flush_denormal(True)  # first torch call, so OpenMP workers inherit FTZ/DAZ
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2 (the first epoch is discarded as warm-up)")

    import lightning  # before setting log levels: importing it sets its loggers' levels

    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    load_before = os.getloadavg()

    loader = make_loader(args)
    init_diff = 0.0
    diffs, moved = [], []
    res = {"plain": ([], [], []), "zoolab": ([], [], [])}  # steps, epochs, outside-step per step
    for r in range(args.repeats):
        zoo, ref = build_pair(args)
        init_diff = max(init_diff, max_param_diff(zoo, ref))
        bench, plain = run_pair(zoo, ref, loader, args.epochs, plain_first=r % 2 == 1)
        diffs.append(bench.diff)
        moved.append(bench.moved)
        for side, timer in (("zoolab", bench), ("plain", plain)):
            steps, epochs = timer.steps, timer.epochs
            assert len(epochs) == args.epochs and all(len(s) == args.batches for s in steps), (side, epochs)
            res[side][0].extend(t for s in steps[1:] for t in s)
            res[side][1].extend(epochs[1:])
            res[side][2].extend((e - sum(s)) / len(s) for e, s in zip(epochs[1:], steps[1:]))
        if torch.get_num_threads() != args.threads:
            raise RuntimeError(f"thread count changed to {torch.get_num_threads()} during the run")

    med = {side: [statistics.median(v) for v in vals] for side, vals in res.items()}
    pair_ratios = [z / p for z, p in zip(res["zoolab"][1], res["plain"][1])]

    print(f"model {args.model} | threads {args.threads} | batch size {args.batch_size} | "
          f"image {args.size}x{args.size} | {args.batches} batches/epoch | {args.epochs} epochs "
          f"(first discarded) x {args.repeats} repeats, plain/zoolab epochs interleaved")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical) | torch {torch.__version__} | "
          f"lightning {lightning.__version__} | load avg 1-min before/after "
          f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}")
    print(f"{'':<8} {'step ms (median)':>17} {'epoch s (median)':>17} {'outside-step ms/step':>21}")
    for side in ("plain", "zoolab"):
        step, epoch, outside = med[side]
        print(f"{side:<8} {step * 1e3:17.2f} {epoch:17.3f} {outside * 1e3:21.2f}")
    print(f"ratio zoolab/plain: step {med['zoolab'][0] / med['plain'][0]:.3f}, "
          f"epoch {med['zoolab'][1] / med['plain'][1]:.3f} "
          f"(median of paired epochs {statistics.median(pair_ratios):.3f})  (target <= 1.10)")
    print(f"equality: max |param zoolab - plain| after 1 epoch = {max(diffs):.3e} "
          f"(at init {init_diff:.1e}; that epoch moved params by up to {min(moved):.1e})")


if __name__ == "__main__":
    main()
