"""DDP on the CPU (``trainer=ddp_cpu``: 2 gloo processes) for every trainable family: the run ends ``ok``
with one writer, and its metrics equal those of a 1-process evaluation of its own checkpoint (the
evaluators gather every rank's outputs and drop the samples DistributedSampler repeats)."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.cli.test_reid_cli import FAST as REID_FAST, TINY_VIT
from tests.conftest import FAST, REPO, run_cli

# Latency and the model-size figure are measured by rank 0 only; they are not evaluation results.
NOT_COMPARED = ("latency", "cpu_", "model_size")

FAMILIES = {
    # 3 classes x 7 test images: 21, an odd split, so DistributedSampler repeats one image.
    "image_classifier": ["+exp=cherry_resnet18_aug_unnorm", *FAST,
                         "dataset.root.counts={train:12,val:5,test:7}",
                         "dataset.classes=[cherry_clean,cherry_pit,cherry_maybe]", "trainer.max_epochs=1"],
    "embedding_classifier": ["+exp=clf_dinov3_vits16_mlp256", "trainer.max_epochs=2"],
    "detection": ["+exp=sardet_linear_probe", "dataset.root.counts={train:6,val:3,test:5}", "trainer.max_epochs=1",
                  "head.image_size=[64,64]"],
    "reid": ["+exp=promptsg_vitb16_v1", *TINY_VIT, *REID_FAST],
}


def _compared(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(k.startswith(p) or p in k for p in NOT_COMPARED)}


# Detection and re-ID take minutes on 2 cores: `make test-slow` runs them.
SLOW = {"detection", "reid"}


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FAMILIES])
def test_two_process_run_matches_one_process_evaluation_of_its_checkpoint(family, tmp_path, cache_dir):
    args = [*FAMILIES[family], "+smoke=cpu"]
    ddp_dir, eval_dir = tmp_path / "ddp", tmp_path / "eval"
    proc = run_cli([*args, "trainer=ddp_cpu", f"hydra.run.dir={ddp_dir}"], REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    record = json.loads((ddp_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["device"]["processes"] == 2
    assert not list(ddp_dir.rglob("*.tmp*")), "a temporary file was left behind"
    assert sorted(p.name for p in ddp_dir.glob("*.log")) == ["zoolab.log"], "only rank 0 writes files"

    proc = run_cli([*args, f"ckpt={ddp_dir / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={eval_dir}"], REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert json.loads((eval_dir / "run.json").read_text())["device"]["processes"] == 1
    two = json.loads((ddp_dir / "smoke_metrics.json").read_text())
    one = json.loads((eval_dir / "smoke_metrics.json").read_text())
    assert _compared(two) == _compared(one)


# ------------------------------------------------------------------------------- gathering in order
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank: int, world: int, port: int, n: int, out) -> None:
    from torch.utils.data import DistributedSampler

    from zoolab.evaluators.base import gather_objects, gather_rows

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        mine = list(DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False))
        rows = torch.tensor(mine, dtype=torch.float64).unsqueeze(1).repeat(1, 3)
        out[rank] = (gather_rows(rows, n)[:, 0].long().tolist(), gather_rows(mine, n),
                     gather_rows(rows.numpy(), n)[:, 0].astype(int).tolist(), gather_objects({rank: mine}))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("n", [7, 8])
def test_gathered_rows_come_back_in_dataset_order_without_the_repeated_samples(n):
    world = 3 if n == 7 else 2   # 7 on 3 ranks: DistributedSampler repeats two samples
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_gather_worker, args=(world, _free_port(), n, out), nprocs=world, join=True)
        results = dict(out)
    for rank in range(world):
        tensor_order, list_order, array_order, objects = results[rank]
        assert tensor_order == list_order == array_order == list(range(n))
        assert sorted(objects[0]) == [0] and len(objects) == world


def test_gather_is_the_identity_in_one_process():
    from zoolab.evaluators.base import gather_objects, gather_rows

    rows = torch.arange(5)
    assert gather_rows(rows, 5) is rows and gather_objects("x") == ["x"]
