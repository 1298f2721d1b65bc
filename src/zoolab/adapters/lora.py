"""LoRA on a timm backbone's MLP layers (peft), with optional whole-stage unfreezing.

Follows SAR-LoRA-DINO's hand-written ``LoRALinear`` (the original zoo did not use peft): LoRA wraps the
``nn.Linear`` ``mlp.fc1``/``mlp.fc2`` layers named in ``targets``; the update is
``B(A(dropout(x))) * alpha / r`` with ``alpha = 2r`` by default and no LoRA bias, which is exactly peft's
``LoraConfig(bias="none")``.

"Unfreeze stage 3" keeps the original's order: the original unfroze the stage first and injected LoRA
afterwards, and injection froze each wrapped base layer. So a LoRA-wrapped ``fc`` inside an unfrozen stage
keeps its base weight frozen while everything else in the stage trains. With peft we inject first (peft
freezes every non-adapter parameter of the module it is given), unfreeze the named submodules, then re-freeze
every ``base_layer`` parameter inside them. Only these semantics reproduce the original's reported trainable
counts: e.g. r=16 on fc2 + stage 3 trains 1,082,880 LoRA + 8,390,400 stage-3 parameters = 9,473,280, where
unfreezing all of stage 3 would give 16,553,472 (docs/detection.md lists every row).

peft is given the backbone's ``.model`` only, never a whole detector: it would freeze the neck and head.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from zoolab.errors import ZoolabError

__all__ = ["LoRA", "lora_state_dict", "load_lora_state_dict", "merge_lora"]


def _is_lora_name(name: str) -> bool:
    """Adapter parameters are the ones peft names ``lora_A``, ``lora_B`` (``lora_*`` in general)."""
    return any(part.startswith("lora_") for part in name.split("."))


def _host(module: nn.Module) -> nn.Module:
    """The network peft injects into: a zoolab backbone's timm ``.model``."""
    model = getattr(module, "model", None)
    if not isinstance(model, nn.Module):
        raise ZoolabError(
            f"LoRA expects a zoolab backbone with a timm `.model`, got {type(module).__name__}",
            where="adapter: lora",
            fix="use a TimmFeatures or TimmBackbone backbone with adapter=lora",
        )
    return model


class LoRA:
    """LoRA adapters on a backbone's MLP layers; everything else in the backbone frozen unless unfrozen.

    Args:
        r: LoRA rank.
        alpha: LoRA scaling numerator (update scaled by alpha / r); None means 2r, as in the original.
        dropout: dropout on the LoRA branch input.
        targets: MLP layer names to wrap, e.g. ``[fc2]`` or ``[fc1, fc2]`` (matched as ``*.mlp.<name>``).
        unfreeze: backbone submodules to train fully as well, e.g. ``[stages_3]``; LoRA-wrapped base
            weights inside them stay frozen (the original's semantics).
        lr: learning rate for the backbone's trainable parameters; None uses the optimiser's.
    """

    def __init__(
        self,
        r: int = 8,
        alpha: float | None = None,
        dropout: float = 0.0,
        targets: Sequence[str] = ("fc2",),
        unfreeze: Sequence[str] = (),
        lr: float | None = None,
    ) -> None:
        if r < 1:
            raise ZoolabError(f"LoRA rank r={r} must be at least 1", where="adapter.r", fix="use e.g. r=8")
        if not 0.0 <= dropout < 1.0:
            raise ZoolabError(
                f"LoRA dropout {dropout} is outside [0, 1)", where="adapter.dropout", fix="use 0.0"
            )
        targets = [str(t) for t in targets]
        if not targets or not all(re.fullmatch(r"\w+", t) for t in targets):
            raise ZoolabError(
                f"LoRA targets {targets} must be a non-empty list of MLP layer names",
                where="adapter.targets",
                fix="use e.g. [fc2] or [fc1, fc2]",
            )
        self.r = int(r)
        self.alpha = float(alpha) if alpha is not None else 2.0 * self.r
        self.dropout = float(dropout)
        self.targets = targets
        self.unfreeze = [str(u) for u in unfreeze]
        self.lr = lr

    @property
    def target_pattern(self) -> str:
        """peft regex (``re.fullmatch`` on full module names), e.g. ``.*\\.mlp\\.(fc1|fc2)``."""
        return r".*\.mlp\.(" + "|".join(re.escape(t) for t in self.targets) + ")"

    def apply(self, module: nn.Module) -> nn.Module:
        """Inject LoRA into ``module.model`` in place, set trainability, and return ``module``."""
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.lora import LoraLayer

        model = _host(module)
        targeted = self._check_targets(module, model)
        unfrozen = self._unfreeze_modules(model)  # before injecting: a bad name leaves the model untouched
        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_pattern,
            bias="none",
        )
        inject_adapter_in_model(config, model)
        wrapped = [name for name, m in model.named_modules() if isinstance(m, LoraLayer)]
        if sorted(wrapped) != sorted(targeted):  # guards against silent changes in peft's matching
            raise ZoolabError(
                f"peft wrapped {len(wrapped)} layers of '{getattr(module, 'name', type(model).__name__)}' "
                f"for targets {self.targets}, expected the {len(targeted)} matching nn.Linear layers",
                where="adapter.targets",
                fix="report this as a zoolab bug (peft version change?)",
            )
        for submodule in unfrozen:
            for param_name, param in submodule.named_parameters():
                param.requires_grad_("base_layer" not in param_name.split("."))
        return module

    def _check_targets(self, module: nn.Module, model: nn.Module) -> list[str]:
        """Names of the layers to wrap; refuses targets matching nothing or layers that are not ``nn.Linear``.

        ConvNeXt variants built with ``conv_mlp=True`` (atto ... nano, ConvNeXt-V2 small sizes) have 1x1
        ``Conv2d`` fc layers; the original injected into ``nn.Linear`` only, so it would have injected
        nothing. Stop rather than train a silently different (or empty) adapter.
        """
        backbone = getattr(module, "name", type(model).__name__)
        if any(_is_lora_name(name) for name, _ in model.named_modules()):
            raise ZoolabError(
                f"backbone '{backbone}' already carries LoRA layers",
                where="adapter: lora",
                fix="apply the LoRA adapter once, to a freshly built backbone",
            )
        matched = {n: m for n, m in model.named_modules() if re.fullmatch(self.target_pattern, n)}
        not_linear = sorted({type(m).__name__ for m in matched.values() if not isinstance(m, nn.Linear)})
        if matched and not not_linear:
            return list(matched)
        if matched:
            found = (
                f"they match {len(matched)} {'/'.join(not_linear)} layers, and LoRA here wraps nn.Linear MLP "
                "layers only, as the original did (ConvNeXt models built with conv_mlp=True have 1x1 Conv2d "
                "fc1/fc2)"
            )
        else:
            found = "they match no layer"
        raise ZoolabError(
            f"LoRA targets {self.targets} (pattern '{self.target_pattern}') select no nn.Linear layer of "
            f"backbone '{backbone}': {found}",
            where="adapter.targets / backbone.name",
            fix="use MLP layer names the backbone has (fc1, fc2) on a backbone with Linear MLP layers "
            "(e.g. convnext_small, convnext_tiny, test_convnext), or adapter=frozen / adapter=none",
        )

    def _unfreeze_modules(self, model: nn.Module) -> list[nn.Module]:
        modules = []
        for name in self.unfreeze:
            try:
                modules.append(model.get_submodule(name))
            except AttributeError:
                top = [n for n, _ in model.named_children()]
                raise ZoolabError(
                    f"adapter.unfreeze names '{name}', which is not a submodule of the backbone",
                    where="adapter.unfreeze",
                    fix=f"use submodule names of the timm features model, e.g. one of {top}",
                ) from None
        return modules

    def param_groups(self, module: nn.Module, lr: float) -> list[dict]:
        """LoRA weights and fully unfrozen weights as two groups, both at ``self.lr`` when it is set."""
        extra = {"lr": self.lr} if self.lr is not None else {}
        trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        lora = [p for n, p in trainable if _is_lora_name(n)]
        unfrozen = [p for n, p in trainable if not _is_lora_name(n)]
        groups = [
            {"name": "backbone.lora", "params": lora, **extra},
            {"name": "backbone.unfrozen", "params": unfrozen, **extra},
        ]
        return [g for g in groups if g["params"]]


def lora_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA adapter tensors of ``module`` (a LoRA backbone or anything holding one), keyed as in its
    state dict; nothing else (unfrozen stages are not included)."""
    return {k: v for k, v in module.state_dict().items() if _is_lora_name(k)}


def load_lora_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter weights saved by ``lora_state_dict`` into a module with the same LoRA layers."""
    expected = set(lora_state_dict(module))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ZoolabError(
            f"LoRA weights do not fit this model: {len(missing)} adapter tensors missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})",
            where="LoRA adapter state dict",
            fix="load weights saved from a model with the same backbone and LoRA r/targets",
        )
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ZoolabError(
            f"LoRA weights do not fit this model ({exc})",
            where="LoRA adapter state dict",
            fix="load weights saved from a model with the same LoRA rank",
        ) from None


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base layer and put the plain layer back, in place.

    The merged module has the original layer types and state-dict keys (``mlp.fc2.weight``), so it
    loads into a model built without LoRA. Returns ``module``.
    """
    from peft.tuners.lora import LoraLayer

    wrapped = [(name, m) for name, m in module.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in wrapped:
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, layer.get_base_layer())
    for sub in module.modules():
        if "peft_config" in vars(sub):
            del sub.peft_config
    return module
