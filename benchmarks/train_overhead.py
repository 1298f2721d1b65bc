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
The first epoch of every run is warm-up and discarded; runs are repeated ``--repeats`` times with
the order of the two sides alternated, and medians are reported. The printed ratios are
zoolab / plain (1.00 = no overhead). The equality check trains one epoch on each side from the same
init and prints the max |difference| of the final parameters (the math is the same, so ~0).

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


class StepTimer:
    """Lightning callback recording per-step and per-epoch wall times (``time.perf_counter``)."""

    def __new__(cls):
        import lightning as L

        class _Timer(L.Callback):
            def __init__(self) -> None:
                self.steps: list[list[float]] = []
                self.epochs: list[float] = []

            def on_train_epoch_start(self, trainer, pl_module) -> None:
                self.steps.append([])
                self._epoch_t0 = time.perf_counter()

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                self._step_t0 = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                self.steps[-1].append(time.perf_counter() - self._step_t0)

            def on_train_epoch_end(self, trainer, pl_module) -> None:
                self.epochs.append(time.perf_counter() - self._epoch_t0)

        return _Timer()


def run_zoolab(task, loader, epochs: int) -> tuple[list[list[float]], list[float]]:
    """Fit with a Trainer configured like conf/trainer/cpu.yaml and zoolab's CSV logger."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    timer = StepTimer()
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
            callbacks=[timer],
            default_root_dir=tmp,
        )
        trainer.fit(task, train_dataloaders=loader)
    return timer.steps, timer.epochs


def run_plain(task, loader, epochs: int) -> tuple[list[list[float]], list[float]]:
    """Hand-written loop on the task's own modules, loss and parameter groups."""
    backbone, head, loss_fn = task.backbone, task.head, task.loss_fn
    optimizer = torch.optim.AdamW(task._param_groups(), lr=1.0e-4, weight_decay=0.01)
    backbone.train()
    head.train()
    steps, epoch_times = [], []
    for _ in range(epochs):
        steps.append([])
        t_epoch = time.perf_counter()
        for x, y in loader:
            t0 = time.perf_counter()
            logits = head(backbone(x))
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps[-1].append(time.perf_counter() - t0)
        epoch_times.append(time.perf_counter() - t_epoch)
    return steps, epoch_times


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

    import lightning  # noqa: F401  (imported first: it sets its loggers' levels on import)

    warnings.filterwarnings("ignore", module=r"lightning(\..*)?")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    load_before = os.getloadavg()

    loader = make_loader(args)

    # Equality check (doubles as process warm-up): one epoch each from the same init, same batches.
    zoo, ref = build_pair(args)
    init_diff = max_param_diff(zoo, ref)
    init = [p.detach().clone() for p in ref.parameters()]
    run_zoolab(zoo, loader, 1)
    run_plain(ref, loader, 1)
    diff = max_param_diff(zoo, ref)
    moved = max(float((p.detach() - q).abs().max()) for p, q in zip(ref.parameters(), init))

    plain_steps, zoo_steps, plain_epochs, zoo_epochs, plain_out, zoo_out = [], [], [], [], [], []
    for r in range(args.repeats):
        zoo, ref = build_pair(args)
        sides = [("zoolab", zoo), ("plain", ref)]
        for side, task in sides if r % 2 == 0 else reversed(sides):
            steps, epochs = (run_zoolab if side == "zoolab" else run_plain)(task, loader, args.epochs)
            assert len(epochs) == args.epochs and all(len(s) == args.batches for s in steps), (side, epochs)
            (zoo_steps if side == "zoolab" else plain_steps).extend(t for s in steps[1:] for t in s)
            (zoo_epochs if side == "zoolab" else plain_epochs).extend(epochs[1:])
            (zoo_out if side == "zoolab" else plain_out).extend(
                (e - sum(s)) / len(s) for e, s in zip(epochs[1:], steps[1:]))
        if torch.get_num_threads() != args.threads:
            raise RuntimeError(f"thread count changed to {torch.get_num_threads()} during the run")

    ps, zs = statistics.median(plain_steps) * 1e3, statistics.median(zoo_steps) * 1e3
    pe, ze = statistics.median(plain_epochs), statistics.median(zoo_epochs)
    outside_p, outside_z = statistics.median(plain_out) * 1e3, statistics.median(zoo_out) * 1e3

    print(f"model {args.model} | threads {args.threads} | batch size {args.batch_size} | "
          f"image {args.size}x{args.size} | {args.batches} batches/epoch | {args.epochs} epochs "
          f"(first discarded) x {args.repeats} repeats")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical) | torch {torch.__version__} | "
          f"lightning {lightning.__version__} | load avg 1-min before/after "
          f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}")
    print(f"{'':<8} {'step ms (median)':>17} {'epoch s (median)':>17} {'outside-step ms/step':>21}")
    print(f"{'plain':<8} {ps:17.2f} {pe:17.3f} {outside_p:21.2f}")
    print(f"{'zoolab':<8} {zs:17.2f} {ze:17.3f} {outside_z:21.2f}")
    step_ratio, epoch_ratio = zs / ps, ze / pe
    print(f"ratio zoolab/plain: step {step_ratio:.3f}, epoch {epoch_ratio:.3f}  (target <= 1.10)")
    print(f"equality: max |param zoolab - plain| after 1 epoch = {diff:.3e} "
          f"(at init {init_diff:.1e}; training moved params by up to {moved:.1e})")


if __name__ == "__main__":
    main()
