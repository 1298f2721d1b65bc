"""``task=gradcam_detection``: class-agnostic activation maps of a trained detector, per feature level.

``python -m zoolab +exp=sardet_lora_r16_fc1fc2 task=gradcam_detection ckpt=PATH [task.split=val]
[task.sample=16]`` loads the detector and, for each image, computes EigenCAM (the ``grad-cam`` library's
gradient-free CAM, the method its documentation recommends for detectors: the first principal component
of a layer's activations) at the backbone stages C3-C5 and the FPN outputs P3-P5. Each image becomes
``gradcam/<split>/<image id>.png``: the image with ground truth (green) and predictions above
``score_thresh`` painted, then one heat-map overlay per level, labelled; ``index.md`` is the contact
sheet, ``metrics.json`` the count and the export time per image.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from zoolab.errors import ZoolabError
from zoolab.families.visualize import VisualizeFamily
from zoolab.tasks.visualize import paint_detections

__all__ = ["DetectionGradCamFamily", "feature_layers"]

log = logging.getLogger(__name__)


class _Pyramid(nn.Module):
    """Batch -> one number per pyramid level; the CAM library needs a tensor output, the maps come from hooks."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([level.mean() for level in self.detector.features(batch)])[None]


def feature_layers(detector: nn.Module) -> dict[str, nn.Module]:
    """``C3..C5`` (the timm backbone's returned stages) and ``P3..P5`` (the FPN's output convolutions)."""
    timm_model = next((m for m in detector.backbone.modules() if hasattr(m, "return_layers")), None)
    if timm_model is None:
        raise ZoolabError("the detector's backbone is not a timm features model", where="task=gradcam_detection",
                          fix="use a detection experiment with a timm backbone (backbone: convnext_small_*)")
    stages = list(timm_model.return_layers)
    layers = {f"C{i + 3}": timm_model.get_submodule(name) for i, name in enumerate(stages)}
    layers.update({f"P{i + 3}": block for i, block in enumerate(detector.neck.layer_blocks)})
    return layers


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    picture = Image.fromarray(tile)
    ImageDraw.Draw(picture).rectangle((0, 0, 8 * len(text) + 6, 14), fill=(0, 0, 0))
    ImageDraw.Draw(picture).text((3, 2), text, fill=(255, 255, 255))
    return np.asarray(picture)


class DetectionGradCamFamily(VisualizeFamily):
    def evaluate(self, task, trainer, datamodule, out):
        from pytorch_grad_cam import EigenCAM
        from pytorch_grad_cam.utils.image import show_cam_on_image

        split, score_thresh = str(self.cfg.task.split), float(self.cfg.task.score_thresh)
        dataset = datamodule.dataset(split)
        indices, folder = self._selection(dataset)
        folder = f"gradcam/{folder}"
        detector = task.detector.eval()
        layers = feature_layers(detector)
        wrapper = _Pyramid(detector)
        names, start = [], time.perf_counter()
        for index in indices:
            image, target = dataset[index]
            with torch.no_grad():
                (prediction,) = detector([image])
                batch = detector.transform([image])[0].tensors
            height, width = batch.shape[-2:]
            shown = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False)[0]
            scale = torch.tensor([width / image.shape[-1], height / image.shape[-2]] * 2)
            keep = prediction["scores"] >= score_thresh
            painted = paint_detections(shown, target["boxes"] * scale, prediction["boxes"][keep] * scale,
                                       prediction["scores"][keep], prediction["labels"][keep], task.class_names)
            rgb = shown.clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)
            tiles = [_label(painted.permute(1, 2, 0).numpy(), "detections")]
            for name, layer in layers.items():
                with EigenCAM(model=wrapper, target_layers=[layer]) as cam:
                    heat = cam(input_tensor=batch, targets=None)[0]
                tiles.append(_label(show_cam_on_image(rgb, heat, use_rgb=True), name))
            relative = f"{folder}/{int(target['image_id']):08d}.png"
            out.write_png(relative, torch.from_numpy(np.concatenate(tiles, axis=1)).permute(2, 0, 1).contiguous())
            names.append((relative.rsplit("/", 1)[1], int(keep.sum()), len(target["boxes"])))
        seconds = (time.perf_counter() - start) / max(1, len(indices))
        sheet = [f"# EigenCAM per level: {self.cfg.exp}, split {split}", "",
                 f"Tiles: detections (ground truth green, predictions >= {score_thresh}), then {', '.join(layers)}.",
                 "", "| image | predictions shown | ground-truth boxes |", "| :--- | ---: | ---: |"]
        sheet += [f"| ![{n}]({n}) | {p} | {g} |" for n, p, g in names]
        out.write_text(f"{folder}/index.md", "\n".join(sheet) + "\n")
        out.write_json(f"{folder}/metrics.json", {"images": len(names), "split": split, "levels": list(layers),
                                                  "seconds_per_image": round(seconds, 4)})
        out.record.update(gradcam=f"{folder}/index.md", gradcam_seconds_per_image=round(seconds, 4))
        log.info("wrote %d EigenCAM panels to %s (%.2f s per image)", len(names), out.path(folder), seconds)
        return {}
