"""The cherry report's production "two-stage" method, runnable beside direct 3-class training.

Stage 1 trains a binary clean-vs-pit model (the ``maybe`` folder is read as pit). Stage 2 labels the
training images that stage 1 misclassifies as ``maybe``, grows the head to three outputs (clean and pit
rows kept from stage 1) and fine-tunes. Evaluation uses the dataset's own three-class labels, so the
result is comparable with a model trained on those labels directly (``cherry_*_3class`` experiments).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from zoolab.data.image_folder import ImageFolderSplit
from zoolab.data.transforms import build_transform
from zoolab.errors import ZoolabError
from zoolab.runfolder import RunRecord, write_json_atomic, write_text_atomic
from zoolab.train import build_task, evaluate, fit, reject_ckpt

__all__ = ["train_two_stage", "misclassified", "grow_head"]

log = logging.getLogger(__name__)


def misclassified(model: torch.nn.Module, dataset: ImageFolderSplit, batch_size: int = 64) -> list[bool]:
    """Which samples of ``dataset`` (eval transforms) the model gets wrong."""
    model.eval()
    wrong: list[bool] = []
    with torch.inference_mode():
        for images, targets in DataLoader(dataset, batch_size=batch_size):
            wrong += (model(images).argmax(dim=1) != targets).tolist()
    return wrong


def grow_head(linear: torch.nn.Linear, rows: list[int]) -> torch.nn.Linear:
    """A wider linear layer whose output ``rows[i]`` copies row ``i`` of ``linear``; new rows start at 0."""
    grown = torch.nn.Linear(linear.in_features, max(rows) + 1 if rows else linear.out_features)
    with torch.no_grad():
        grown.weight.zero_()
        grown.bias.zero_()
        for old, new in enumerate(rows):
            grown.weight[new] = linear.weight[old]
            grown.bias[new] = linear.bias[old]
    return grown


def _check_classes(classes: list[str], maybe: str, positive: str) -> str:
    if len(classes) != 3 or maybe not in classes or positive not in classes:
        raise ZoolabError(
            f"the two-stage method needs three classes including '{maybe}' and '{positive}', got {classes}",
            where="dataset.classes",
            fix=f"set dataset.classes=[cherry_clean,{maybe},{positive}]",
        )
    return next(c for c in classes if c not in (maybe, positive))


def train_two_stage(cfg: DictConfig, run_dir: Path, record: RunRecord) -> dict:
    reject_ckpt(cfg)
    stages = cfg.task.stages
    maybe, positive = stages.maybe_class, cfg.task.module.positive_class
    L.seed_everything(cfg.seed, workers=True)
    with record.phase("setup"):
        three = instantiate(cfg.dataset)
        three.setup()
        negative = _check_classes(three.class_names, maybe, positive)
        binary_classes = [negative, positive]
        binary = instantiate(cfg.dataset, classes=binary_classes, relabel={maybe: positive})
        binary.setup()
        stage1 = build_task(cfg, binary_classes)
        write_text_atomic(run_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    fit(cfg, stage1, binary, run_dir, record, stage="stage1",
        trainer_overrides={"max_epochs": stages.stage1_epochs})

    with record.phase("relabel"):
        plain = build_transform(binary.image_size, "none", train=False)
        train_eval = ImageFolderSplit(binary.root / "train", binary_classes, plain, {maybe: positive})
        wrong = misclassified(torch.nn.Sequential(stage1.backbone, stage1.head), train_eval, binary.batch_size)
        to_three = {i: three.class_names.index(c) for i, c in enumerate(binary_classes)}
        maybe_index = three.class_names.index(maybe)
        relabelled = [(path, maybe_index if w else to_three[label])
                      for (path, label), w in zip(train_eval.samples, wrong)]
        three.datasets["train"].samples = relabelled
        write_json_atomic(run_dir / "stage2_labels.json", {
            "misclassified_by_stage1": int(sum(wrong)), "train_images": len(wrong),
            "relabelled_as": maybe, "files": [str(p) for (p, _), w in zip(train_eval.samples, wrong) if w]})
        log.info("stage 2: %d of %d training images relabelled '%s'", sum(wrong), len(wrong), maybe)

    stage2 = build_task(cfg, three.class_names)
    stage2.backbone.load_state_dict(stage1.backbone.state_dict())
    stage2.head.fc = grow_head(stage1.head.fc, [to_three[0], to_three[1]])
    record.update(params=stage2.parameter_counts())
    trainer = fit(cfg, stage2, three, run_dir, record, trainer_overrides={"max_epochs": stages.stage2_epochs})
    return evaluate(cfg, stage2, trainer, three, run_dir, record)
