"""BNNeck re-ID head (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-identification",
CVPRW 2019): optional Linear reduction -> BatchNorm1d with a frozen bias -> ArcFace or linear classifier.

The triplet loss uses the feature before the neck and the ID loss the logits after it. The BN bias is
frozen (not trained), as in the strong-baseline and CLIP-ReID code; the linear classifier has no bias and
is initialised N(0, 0.001). ``train_neck=False`` replays CLIP-FH quirk #7 (docs/reid.md): the reduction
and BN parameters are left out of training (``requires_grad`` False), so the reduction stays a fixed
random projection, while BN running statistics still update in train mode.
"""

from __future__ import annotations

from torch import Tensor, nn

from zoolab.errors import ZoolabError
from zoolab.heads.arcface import ArcFaceClassifier

__all__ = ["BNNeckHead"]

_CLASSIFIERS = ("arcface", "linear")


class BNNeckHead(nn.Module):
    """features [B, in_features] (+ labels when training with ArcFace) -> logits [B, num_classes].

    Args:
        in_features: width of the re-ID feature.
        num_classes: number of training identities.
        reduction_dim: Linear reduction width before the BN (None: no reduction).
        classifier: ``arcface`` (margin logits when labels are given) or ``linear`` (bias-free).
        s, m: ArcFace scale and additive angular margin.
        train_neck: False freezes the reduction and BN parameters (CLIP-FH quirk #7).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        reduction_dim: int | None = None,
        classifier: str = "arcface",
        s: float = 30.0,
        m: float = 0.5,
        train_neck: bool = True,
    ) -> None:
        super().__init__()
        if classifier not in _CLASSIFIERS:
            raise ZoolabError(f"unknown head.classifier '{classifier}'", where="head.classifier",
                              fix=f"use one of {', '.join(_CLASSIFIERS)}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.classifier_type = classifier
        dim = reduction_dim or in_features
        self.reduction = nn.Linear(in_features, dim) if reduction_dim else nn.Identity()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        if classifier == "arcface":
            self.classifier = ArcFaceClassifier(dim, num_classes, s=s, m=m)
        else:
            self.classifier = nn.Linear(dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.train_neck = train_neck
        if not train_neck:
            self.reduction.requires_grad_(False)
            self.bn.requires_grad_(False)

    def neck_feature(self, feature: Tensor) -> Tensor:
        """The BN-normalised (after the optional reduction) feature the classifier sees."""
        return self.bn(self.reduction(feature))

    def forward(self, feature: Tensor, labels: Tensor | None = None) -> Tensor:
        neck = self.neck_feature(feature)
        if self.classifier_type == "arcface":
            return self.classifier(neck, labels)
        return self.classifier(neck)

    def extra_repr(self) -> str:
        return f"classifier={self.classifier_type}, train_neck={self.train_neck}"
