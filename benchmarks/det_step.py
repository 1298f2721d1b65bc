"""Detection training step: zoolab (DetectionTask + Lightning Trainer) vs a plain PyTorch loop, same work.

Both sides train an identical ``DetectionTask`` (``TimmFeatures`` -> LoRA or full fine-tune ->
``RetinaNetDetector``, focal + L1 loss, AdamW lr 1e-4 wd 0.05 and the per-iteration warm-up schedule) from
the same init on the same in-memory batches (a list dataset of fixed synthetic images and boxes, no
workers, no shuffle, so no image decoding is timed). The zoolab side is a Lightning ``Trainer`` set up like
``conf/trainer/cpu.yaml`` with zoolab's CSV logger; the plain side is a hand-written
``detector(images, targets) -> sum of losses -> zero_grad -> backward -> step -> scheduler.step`` loop on
the twin task's own detector, parameter groups and scheduler.

Step time is measured from the moment a batch is in hand to the end of the optimiser step (Lightning:
``on_train_batch_start`` -> ``on_train_batch_end``, so it includes ``training_step``, the ``self.log``
calls, the closure, backward, ``optimizer.step`` and the scheduler step). The sides alternate in blocks of
``--block`` steps so that load from other processes on a shared machine hits both alike; the first
``--warmup`` steps of each side are discarded and medians are reported. Equality check: after all steps
both detectors have seen the same batches from the same init; the max |difference| of their parameters
is printed (same math, ~0).

    python benchmarks/det_step.py --model convnext_small --adapter lora --size 128 --steps 12
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_overhead import cpu_model, max_param_diff  # noqa: E402

CLASSES = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="convnext_small", help="timm architecture (random init)")
    parser.add_argument("--adapter", choices=("lora", "full"), default="lora", help="LoRA r8 fc2 (E0013) or full FT")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="detector input side (the recipe uses 800)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="first steps of each side not timed")
    parser.add_argument("--block", type=int, default=3, help="steps per side before switching")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def build_task(args: argparse.Namespace):
    """The task as zoolab's ``build_task`` instantiates it from the E0013 config groups (sizes aside)."""
    from zoolab.adapters.freeze import FullFineTune
    from zoolab.adapters.lora import LoRA
    from zoolab.backbones.timm_features import TimmFeatures
    from zoolab.heads.retinanet import RetinaNetDetector
    from zoolab.losses.detection import RetinaNetLoss
    from zoolab.tasks.detection import DetectionTask
    from zoolab.schedules import warmup_multistep

    adapter = LoRA(r=8, targets=["fc2"]) if args.adapter == "lora" else FullFineTune()
    return DetectionTask(
        backbone=TimmFeatures(name=args.model, pretrained=False),
        head=partial(RetinaNetDetector, image_size=[args.size, args.size]),
        adapter=adapter,
        loss=RetinaNetLoss(),
        optimizer=partial(torch.optim.AdamW, lr=1.0e-4, weight_decay=0.05),
        scheduler=partial(warmup_multistep, warmup_iters=500, warmup_ratio=0.001, milestones=[8, 11], gamma=0.1),
        class_names=CLASSES,
    )


def make_batches(args: argparse.Namespace) -> list[tuple[list[torch.Tensor], list[dict]]]:
    """Fixed batches: speckle-like images of the input size with 1-3 boxes each."""
    g = torch.Generator().manual_seed(args.seed + 1)
    batches = []
    for _ in range(args.steps):
        images, targets = [], []
        for _ in range(args.batch_size):
            images.append(torch.rand(3, args.size, args.size, generator=g) ** 2)
            n = int(torch.randint(1, 4, (), generator=g))
            xy = torch.rand(n, 2, generator=g) * args.size * 0.6
            wh = (0.15 + torch.rand(n, 2, generator=g) * 0.25) * args.size
            targets.append({"boxes": torch.cat([xy, xy + wh], dim=1),
                            "labels": torch.randint(0, len(CLASSES), (n,), generator=g), "image_id": 0})
        batches.append((images, targets))
    return batches


class PlainLoop:
    """Hand-written loop on the twin task's detector, parameter groups and scheduler."""

    def __init__(self, task, iters_per_epoch: int) -> None:
        self.task = task
        self.optimizer = task.optimizer_factory(params=task.param_groups())
        self.scheduler = task.scheduler_factory(self.optimizer, iters_per_epoch=iters_per_epoch)
        self.steps: list[float] = []

    def step(self, batch) -> None:
        detector = self.task.detector
        detector.train()
        images, targets = batch
        with torch.enable_grad():
            t0 = time.perf_counter()
            loss = sum(detector(images, targets).values())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.steps.append(time.perf_counter() - t0)


def make_bench_callback(plain: PlainLoop, batches, block: int):
    """Times zoolab's steps; after every ``block`` of them runs the same batches through the plain loop."""
    import lightning as L

    class BenchCallback(L.Callback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self.done = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.steps.append(time.perf_counter() - self._t0)
            if len(self.steps) % block == 0 or len(self.steps) == len(batches):
                for b in batches[self.done:len(self.steps)]:
                    plain.step(b)
                self.done = len(self.steps)

    return BenchCallback()


def main(argv: list[str] | None = None) -> None:
    torch.set_flush_denormal(True)
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.steps <= args.warmup:
        raise SystemExit("--steps must exceed --warmup")

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from zoolab.data.coco_detection import collate_detection

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    load_before = os.getloadavg()

    torch.manual_seed(args.seed)
    zoo = build_task(args)
    torch.manual_seed(args.seed)
    ref = build_task(args)
    ref.load_state_dict(zoo.state_dict())
    init_diff = max_param_diff(zoo.detector, ref.detector)
    batches = make_batches(args)
    samples = [(img, tgt) for images, targets in batches for img, tgt in zip(images, targets)]
    loader = torch.utils.data.DataLoader(samples, batch_size=args.batch_size, shuffle=False, num_workers=0,
                                         collate_fn=collate_detection)
    plain = PlainLoop(ref, iters_per_epoch=len(batches))
    bench = make_bench_callback(plain, batches, args.block)
    with tempfile.TemporaryDirectory(prefix="zoolab_det_bench_") as tmp:
        trainer = L.Trainer(accelerator="cpu", devices=1, precision="32-true", max_epochs=1,
                            log_every_n_steps=10, num_sanity_val_steps=0, enable_model_summary=False,
                            limit_val_batches=0, logger=CSVLogger(save_dir=tmp, name="", version=""),
                            enable_checkpointing=False, enable_progress_bar=False, callbacks=[bench],
                            default_root_dir=tmp)
        trainer.fit(zoo, train_dataloaders=loader)

    zoo_med = statistics.median(bench.steps[args.warmup:])
    plain_med = statistics.median(plain.steps[args.warmup:])
    counts = zoo.parameter_counts()
    print(f"model {args.model} + RetinaNet | adapter {args.adapter} | trainable {counts['trainable']:,} | "
          f"threads {args.threads} | batch {args.batch_size} x {args.size}x{args.size} | {args.steps} steps "
          f"per side (first {args.warmup} not timed), alternating in blocks of {args.block}")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical) | torch {torch.__version__} | lightning "
          f"{L.__version__} | load avg 1-min before/after {load_before[0]:.2f}/{os.getloadavg()[0]:.2f}")
    print(f"{'':<8} {'step ms (median)':>17}")
    print(f"{'plain':<8} {plain_med * 1e3:17.1f}")
    print(f"{'zoolab':<8} {zoo_med * 1e3:17.1f}")
    print(f"ratio zoolab/plain: step {zoo_med / plain_med:.3f}  (target <= 1.10)")
    print(f"equality: max |param zoolab - plain| after {args.steps} steps = "
          f"{max_param_diff(zoo.detector, ref.detector):.3e} (at init {init_diff:.1e})")


if __name__ == "__main__":
    main()
