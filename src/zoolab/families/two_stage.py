"""The cherry report's production "two-stage" method, runnable beside direct 3-class training.

Stage 1 trains a binary clean-vs-pit model (the ``maybe`` folder is read as pit). Stage 2 labels the
training images that stage 1 misclassifies as ``maybe``, grows the head to three outputs (clean and pit
rows kept from stage 1) and fine-tunes. Evaluation uses the dataset's own three-class labels, so the
result is comparable with a model trained on those labels directly (``cherry_*_3class`` experiments).
"""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate

from zoolab.data.image_folder import ImageFolderSplit
from zoolab.data.transforms import build_transform
from zoolab.errors import ZoolabError
from zoolab.families.base import Phase, build_task_module
from zoolab.families.image_cls import ImageClassificationFamily
from zoolab.tasks.two_stage import grow_head, misclassified

__all__ = ["TwoStageFamily"]

log = logging.getLogger(__name__)


class TwoStageFamily(ImageClassificationFamily):
    accepts_checkpoint = True  # a stage-2 checkpoint is an ordinary 3-class model

    def build_datamodule(self):
        datamodule = super().build_datamodule()
        self.negative = self._check_classes(datamodule.class_names)
        return datamodule

    def _check_classes(self, classes: list[str]) -> str:
        maybe, positive = self.cfg.task.stages.maybe_class, self.cfg.task.module.positive_class
        if len(classes) != 3 or maybe not in classes or positive not in classes:
            raise ZoolabError(
                f"the two-stage method needs three classes including '{maybe}' and '{positive}', got {classes}",
                where="dataset.classes",
                fix=f"set dataset.classes=[cherry_clean,{maybe},{positive}]",
            )
        return next(c for c in classes if c not in (maybe, positive))

    def fit_phases(self, task, three, out):
        stages = self.cfg.task.stages
        maybe, positive = stages.maybe_class, self.cfg.task.module.positive_class
        binary_classes = [self.negative, positive]
        binary = instantiate(self.cfg.dataset, classes=binary_classes, relabel={maybe: positive})
        binary.setup()
        stage1 = build_task_module(self.cfg, binary_classes)
        yield Phase("stage1", stage1, binary, stage="stage1", max_epochs=stages.stage1_epochs)

        with out.record.phase("relabel"):
            plain = build_transform(binary.image_size, "none", train=False)
            train_eval = ImageFolderSplit(binary.root / "train", binary_classes, plain, {maybe: positive})
            wrong = misclassified(torch.nn.Sequential(stage1.backbone, stage1.head), train_eval, binary.batch_size)
            to_three = {i: three.class_names.index(c) for i, c in enumerate(binary_classes)}
            maybe_index = three.class_names.index(maybe)
            relabelled = [(path, maybe_index if w else to_three[label])
                          for (path, label), w in zip(train_eval.samples, wrong)]
            three.datasets["train"].samples = relabelled
            root = binary.root / "train"
            out.write_json("stage2_labels.json", {
                "misclassified_by_stage1": int(sum(wrong)), "train_images": len(wrong), "relabelled_as": maybe,
                "files": [_relative(p, root) for (p, _), w in zip(train_eval.samples, wrong) if w]})
            log.info("stage 2: %d of %d training images relabelled '%s'", sum(wrong), len(wrong), maybe)

        task.backbone.load_state_dict(stage1.backbone.state_dict())
        task.head.fc = grow_head(stage1.head.fc, [to_three[0], to_three[1]])
        yield Phase("stage2", task, three, max_epochs=stages.stage2_epochs)


def _relative(path, root) -> str:
    """Image paths relative to the training split, so the file carries no machine's absolute path."""
    from pathlib import Path

    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name
