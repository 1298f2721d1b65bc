"""A family added from outside src/zoolab: a test-only module and config directory, run through the CLI."""

from __future__ import annotations

import json
import textwrap

from conftest import REPO, run_cli

MODULE = '''
import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hydra.utils import instantiate

from zoolab.evaluators.base import Evaluation, Evaluator
from zoolab.families.base import Family
from zoolab.tasks.base import ZooTask


class ToyFamily(Family):
    """The default hooks, except that the task needs no backbone, adapter or head from the groups."""

    def build_task(self, datamodule):
        return instantiate(self.cfg.task.module)(optimizer=instantiate(self.cfg.optim),
                                                 class_names=datamodule.class_names)


class Blobs(L.LightningDataModule):
    """Two Gaussian blobs, one per class."""

    def __init__(self, n: int = 64, batch_size: int = 16):
        super().__init__()
        self.n, self.batch_size, self.class_names = n, batch_size, ["a", "b"]

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(0)
        def split():
            y = torch.arange(self.n) % 2
            return TensorDataset(torch.randn(self.n, 4, generator=g) + 3 * y[:, None].float(), y)
        self.data = {s: split() for s in ("train", "val", "test")}

    eval_splits = ["val", "test"]

    def loader(self, split):
        return DataLoader(self.data[split], batch_size=self.batch_size)

    def train_dataloader(self):
        return DataLoader(self.data["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return self.loader("val")


class AccuracyEvaluator(Evaluator):
    """An evaluator defined outside the package: accuracy, and a (tiny) figure the family writes."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.hits = []

    def process(self, logits, labels):
        self.hits.append((logits.argmax(1) == labels).float())

    def evaluate(self):
        return Evaluation({"accuracy": float(torch.cat(self.hits).mean())},
                          {f"toy_{self.split}.png": b"not really a png"})


class ToyTask(ZooTask):
    def __init__(self, optimizer, class_names, scheduler=None):
        super().__init__()
        self.head = nn.Linear(4, len(class_names))
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.evaluator = AccuracyEvaluator()

    def components(self):
        return {"head": self.head}

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/acc", (self.head(x).argmax(1) == y).float().mean())

    def on_test_epoch_start(self):
        self.evaluator.reset()

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.evaluator.process(logits=self.head(x), labels=y)

    def evaluate_split(self, split):
        self.evaluator.split = split
        return self.evaluator.evaluate()
'''

TASK = """
name: toy
monitor: val/acc
monitor_mode: max
family: toyfamily.ToyFamily
module:
  _target_: toyfamily.ToyTask
  _partial_: true
"""

EXP = """
# @package _global_
defaults:
  - override /task: toy
  - override /dataset: blobs
exp_id: TOY-1
optim:
  lr: 0.05
trainer:
  max_epochs: 8
reported: {}
"""


def test_a_family_from_outside_the_package_runs_through_the_pipeline(tmp_path, cache_dir):
    (tmp_path / "toyfamily.py").write_text(textwrap.dedent(MODULE))
    conf = tmp_path / "conf"
    (conf / "task").mkdir(parents=True)
    (conf / "exp").mkdir()
    (conf / "dataset").mkdir()
    (conf / "dataset" / "blobs.yaml").write_text("_target_: toyfamily.Blobs\nn: 64\n")
    (conf / "task" / "toy.yaml").write_text(TASK)
    (conf / "exp" / "toy_blobs.yaml").write_text(EXP)
    run_dir = tmp_path / "run"
    proc = run_cli(["--config-dir", str(conf), "+exp=toy_blobs", f"hydra.run.dir={run_dir}"], REPO,
                   env_extra={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["exp_id"] == "TOY-1"
    assert record["params"]["per_component"]["head"]["trainable"] == 10
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["accuracy"] > 0.9  # the blobs are 3 standard deviations apart
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["toy_test.png", "toy_val.png",
                                                                     "training_curves.png"]
    assert (run_dir / "checkpoints" / "model.safetensors").is_file()
    assert not list((REPO / "src" / "zoolab").rglob("toy*"))
