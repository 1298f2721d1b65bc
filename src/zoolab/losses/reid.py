"""The re-ID training objective: weighted ID + triplet + image-text SupCon + center terms.

    L = w_id * CE_ls(logits, y) + w_tri * Triplet(feature, y)
        + w_sc * r(t) * SupCon(image_feature, text_feature, y) + w_c * Center(feature, y)

- ID: cross-entropy with label smoothing on the head's logits (ArcFace heads already add their margin
  when given the labels).
- Triplet: batch-hard (``zoolab.losses.triplet``) on ``outputs['feature']``, the re-ID feature.
- SupCon: symmetric image-text (``zoolab.losses.image_text``) between the CLIP image feature and the
  prompt's text feature, PromptSG's pseudo-token objective. r(t) = 1, or with ``supcon_ramp`` the CLIP-FH
  curriculum r(t) = epoch fraction (its ``w * epoch / epochs``).
- Center (Wen et al. 2016, ``zoolab.losses.center``) on ``outputs['feature']``. Its centres need the
  class count and feature width, so the task calls ``bind(num_classes, feat_dim)`` once; they live in
  ``self.center.centers`` and get their own optimiser group (SGD, lr 0.5) in the task.
- ``auto_balance`` (Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses",
  CVPR 2018): each active term k gets a learned log-variance s_k (``self.log_vars``, initialised 0, to
  be optimised with the other new modules) and enters as exp(-s_k) * w_k * L_k + s_k, so the configured
  weights set the starting balance and the learned precisions adapt it.

Only terms with a positive weight are computed. ``forward`` returns the total and the unweighted terms
under ``loss/id``, ``loss/triplet``, ``loss/supcon``, ``loss/center`` for logging.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoolab.errors import ZoolabError
from zoolab.losses.center import CenterLoss
from zoolab.losses.image_text import SymmetricSupConLoss
from zoolab.losses.triplet import BatchHardTripletLoss

__all__ = ["ReidLoss"]


class ReidLoss(nn.Module):
    """outputs (PromptSG dict), logits [B, C], labels [B], epoch_fraction -> (total, parts)."""

    def __init__(
        self,
        id_weight: float = 1.0,
        label_smoothing: float = 0.1,
        triplet_weight: float = 1.0,
        triplet_margin: float | None = 0.3,
        triplet_exclude_self: bool = True,
        supcon_weight: float = 0.0,
        supcon_temperature: float = 1.0,
        supcon_ramp: bool = False,
        center_weight: float = 0.0,
        auto_balance: bool = False,
    ) -> None:
        super().__init__()
        weights = {"id": id_weight, "triplet": triplet_weight, "supcon": supcon_weight,
                   "center": center_weight}
        negative = {k: w for k, w in weights.items() if w < 0}
        if negative or not any(w > 0 for w in weights.values()):
            raise ZoolabError(f"re-ID loss weights must be >= 0 with at least one positive, got {weights}",
                              where="loss.*_weight",
                              fix="set e.g. loss.id_weight=1.0 loss.triplet_weight=1.0")
        self.weights = weights
        self.active = [k for k, w in weights.items() if w > 0]
        self.label_smoothing = label_smoothing
        self.triplet = BatchHardTripletLoss(margin=triplet_margin, exclude_self=triplet_exclude_self)
        self.supcon = SymmetricSupConLoss(temperature=supcon_temperature)
        self.supcon_ramp = supcon_ramp
        self.center: CenterLoss | None = None
        self.auto_balance = auto_balance
        self.log_vars = nn.Parameter(torch.zeros(len(self.active))) if auto_balance else None

    def bind(self, num_classes: int, feat_dim: int) -> "ReidLoss":
        """Create the center-loss centres (when center_weight > 0) for this class count / feature width."""
        if self.weights["center"] > 0:
            self.center = CenterLoss(num_classes, feat_dim)
        return self

    def _term(self, name: str, outputs: dict, logits: Tensor | None, labels: Tensor) -> Tensor:
        if name == "id":
            if logits is None:
                raise ValueError("the ID loss needs the head's logits")
            return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if name == "triplet":
            return self.triplet(outputs["feature"], labels)
        if name == "supcon":
            if outputs.get("text_feature") is None:
                raise ZoolabError("loss.supcon_weight > 0, but the model produced no text feature",
                                  where="loss.supcon_weight",
                                  fix="use a PromptSG model or set loss.supcon_weight=0")
            return self.supcon(outputs["image_feature"], outputs["text_feature"], labels)
        if self.center is None:
            raise ZoolabError("loss.center_weight > 0, but the center loss was never bound to the classes",
                              where="ReidLoss.bind",
                              fix="call loss.bind(num_classes, feat_dim) before training")
        return self.center(outputs["feature"], labels)

    def forward(self, outputs: dict, logits: Tensor | None, labels: Tensor,
                epoch_fraction: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        labels = labels.long()
        parts: dict[str, Tensor] = {}
        total = None
        for i, name in enumerate(self.active):
            value = self._term(name, outputs, logits, labels)
            parts[f"loss/{name}"] = value.detach()
            weight = self.weights[name]
            if name == "supcon" and self.supcon_ramp:
                weight = weight * float(epoch_fraction)
            term = weight * value
            if self.log_vars is not None:
                term = torch.exp(-self.log_vars[i]) * term + self.log_vars[i]
            total = term if total is None else total + term
        return total, parts
