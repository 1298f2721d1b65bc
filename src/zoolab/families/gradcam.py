"""``task=gradcam``: Grad-CAM overlays of a trained image classifier, with a contact sheet.

``python -m zoolab +exp=cherry_resnet50_aug task=gradcam ckpt=PATH [task.split=val] [task.num_images=16]``
builds the experiment's classifier, loads ``PATH`` and, for each image of ``split`` (all of them unless
``num_images`` is set; ``sample=N`` draws N with ``sample_seed``), computes Grad-CAM for the predicted
class at the backbone's last feature stage with the ``grad-cam`` library (``pytorch_grad_cam``). Each image
becomes ``gradcam/<split>/<index>_<class>.png`` (the image, the heat map over it, and a caption with the
true class, the prediction and its probability); ``gradcam/<split>/index.md`` is the contact sheet (one
row per image, wrong predictions first) and ``gradcam/<split>/metrics.json`` gives the accuracy on those
images and the export time per image. Convolutional timm backbones only (a ViT needs a token-to-grid
reshape that this export does not do).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from zoolab.errors import ZoolabError
from zoolab.families.image_cls import ImageClassificationFamily

__all__ = ["GradCamFamily", "target_layer"]

log = logging.getLogger(__name__)


def target_layer(backbone) -> tuple[str, torch.nn.Module]:
    """Name and module of the backbone's last feature stage (timm's ``feature_info``), where Grad-CAM looks."""
    model = getattr(backbone, "model", None)
    info = getattr(model, "feature_info", None)
    name = info[-1]["module"] if info else None
    if model is None or not name or getattr(model, "patch_embed", None) is not None:
        raise ZoolabError(f"Grad-CAM needs a convolutional timm backbone; '{getattr(backbone, 'name', backbone)}' "
                          "has no convolutional feature stage", where="task=gradcam",
                          fix="use a CNN experiment (ResNet, EfficientNet, MobileNet, ConvNeXt)")
    name = name if hasattr(model, name) else name.replace("_", ".")
    return name, model.get_submodule(name)


PANEL_SIDE = 224  # small (smoke) images are enlarged so that heat map and caption stay readable


def _panel(image: torch.Tensor, cam: np.ndarray, caption: str, wrong: bool) -> np.ndarray:
    """Image | heat-map overlay, with the caption in a band below (red when the prediction is wrong)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    height, width = image.shape[-2:]
    if max(height, width) < PANEL_SIDE:
        size = (round(width * PANEL_SIDE / max(height, width)), round(height * PANEL_SIDE / max(height, width)))
        image = torch.from_numpy(np.asarray(Image.fromarray(image.permute(1, 2, 0).numpy()).resize(size))).permute(2, 0, 1)
        cam = np.asarray(Image.fromarray(cam.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
    rgb = image.permute(1, 2, 0).numpy().astype(np.float32) / 255.0
    overlay = show_cam_on_image(rgb, cam, use_rgb=True)
    side = np.concatenate([(rgb * 255).astype(np.uint8), overlay], axis=1)
    band = Image.new("RGB", (side.shape[1], 18), (200, 40, 40) if wrong else (40, 120, 40))
    ImageDraw.Draw(band).text((4, 3), caption, fill=(255, 255, 255))
    return np.concatenate([side, np.asarray(band)], axis=0)


class GradCamFamily(ImageClassificationFamily):
    needs_checkpoint = True
    exports_weights = False

    def _indices(self, dataset) -> list[int]:
        task = self.cfg.task
        if task.get("sample") is not None:
            generator = torch.Generator().manual_seed(int(task.get("sample_seed") or 0))
            return sorted(torch.randperm(len(dataset), generator=generator)[: int(task.sample)].tolist())
        count = len(dataset) if task.get("num_images") is None else min(int(task.num_images), len(dataset))
        return list(range(count))

    def evaluate(self, task, trainer, datamodule, out) -> dict[str, dict]:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        split = str(self.cfg.task.split)
        if split not in datamodule.datasets:
            raise ZoolabError(f"split '{split}' is not in this dataset", where="task.split",
                              fix=f"use one of {sorted(datamodule.datasets)}")
        dataset = datamodule.datasets[split]
        model = task.inference_model()
        layer_name, layer = target_layer(task.backbone)
        folder = f"gradcam/{split}" + (f"_sample{self.cfg.task.sample}" if self.cfg.task.get("sample") else "")
        rows, correct, start = [], 0, time.perf_counter()
        with GradCAM(model=model, target_layers=[layer]) as cam:
            for index in self._indices(dataset):
                image, label = dataset[index]
                with torch.no_grad():
                    probs = model(image[None].float()).softmax(1)[0]
                predicted = int(probs.argmax())
                heat = cam(input_tensor=image[None].float(), targets=[ClassifierOutputTarget(predicted)])[0]
                truth, guess = task.class_names[int(label)], task.class_names[predicted]
                caption = f"true {truth} | pred {guess} {float(probs[predicted]):.2f}"
                name = f"{index:05d}_{truth}.png"
                out.write_png(f"{folder}/{name}", torch.from_numpy(
                    _panel(image, heat, caption, predicted != int(label))).permute(2, 0, 1).contiguous())
                rows.append((predicted == int(label), name, truth, guess, float(probs[predicted])))
                correct += predicted == int(label)
        seconds = (time.perf_counter() - start) / max(1, len(rows))
        sheet = [f"# Grad-CAM: {self.cfg.exp}, split {split}", "",
                 f"Layer `{layer_name}` (last feature stage), target: the predicted class. "
                 f"{correct}/{len(rows)} correct; wrong predictions first.", "",
                 "| image | true | predicted | p |", "| :--- | :--- | :--- | ---: |"]
        sheet += [f"| ![{name}]({name}) | {truth} | {'**' + guess + '**' if not ok else guess} | {p:.2f} |"
                  for ok, name, truth, guess, p in sorted(rows, key=lambda r: (r[0], r[1]))]
        out.write_text(f"{folder}/index.md", "\n".join(sheet) + "\n")
        metrics = {"images": len(rows), "accuracy": correct / max(1, len(rows)), "split": split,
                   "seconds_per_image": round(seconds, 4)}
        out.write_json(f"{folder}/metrics.json", metrics)
        out.record.update(gradcam=f"{folder}/index.md", gradcam_seconds_per_image=round(seconds, 4))
        log.info("wrote %d Grad-CAM panels to %s (%.2f s per image)", len(rows), out.path(folder), seconds)
        return {}

    def deployment_metrics(self, task, datamodule, out) -> dict:
        return {}
