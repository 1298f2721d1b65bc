"""An open_clip CLIP model as a re-ID backbone: trainable image tower, frozen text tower, pseudo-token
prompts.

Built offline with ``open_clip.create_model(name, pretrained=None)`` from open_clip's named architecture
config (``model_cfg`` deep-merges overrides into it, for tiny test models), then optionally loaded from a
local weights file with open_clip's own loader (never the network). The model is built at
its native input size; afterwards the image tower is adapted to ``image_size`` [H, W] by resizing its
positional embedding in 2-D:

- ViT: ``visual.positional_embedding`` (class row + patch grid) is resampled bicubically over the patch
  grid, class row kept; ``visual.image_size`` / ``visual.grid_size`` follow.
- ModifiedResNet (RN50): ``visual.attnpool.positional_embedding`` (mean-token row + 7x7 grid) is
  resampled to (H/32)x(W/32), first row kept. The original CLIP-FH runs interpolated the flattened
  embedding in 1-D (quirk #15), which scrambles the layout; that is not replayed.

Inputs are float images in 0-255; with ``normalize`` the OpenAI CLIP mean/std are applied inside, so
training, evaluation and export share one preprocessing. ``normalize`` is a plain attribute the task may
switch off to replay the CLIP-FH train/eval mismatch (quirk #9).

Image outputs (``encode_image``) are (global [B, E], tokens [B, N, E]) with E = ``embed_dim``:

- ViT: global = the class token after ``ln_post`` @ ``proj`` (CLIP's image embedding); tokens = the patch
  tokens after the same ``ln_post`` @ ``proj``, so they share the global's space.
- RN50: global = the attention-pool output; tokens = each layer-4 position (+ its attention-pool positional
  embedding) passed through the pool's value and output projections, ``c_proj(v_proj(x_i + pos_i))``.
  The pool's output is, per head, a convex combination of exactly these value vectors, so the tokens live
  in the global feature's space (the value-embedding reading of dense CLIP features).

Text: the tower is frozen (``requires_grad`` False) and kept in eval mode by ``train()``.
``encode_text_with_pseudo_token`` replaces one placeholder word's token embedding by a learned vector
(PromptSG's pseudo-word s*) before the positional embedding. Because the text transformer is causal and
CLIP pools the EOT position, every text pass runs only up to the last EOT position of the batch: the
outputs there are identical to the full 77-token computation, at a fraction of the cost.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoolab.backbones.weights_file import (
    check_fits,
    checked_load_state_dict,
    read_state_dict,
    sniff_format,
    unreadable,
)
from zoolab.config import deep_merge
from zoolab.errors import ZoolabError

__all__ = ["OpenClipBackbone", "build_clip_model", "resize_grid_pos_embed"]


_TORCHSCRIPT_EXTRAS = {"input_resolution", "context_length", "vocab_size", "attn_mask"}


def resize_grid_pos_embed(pos_embed: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                          num_prefix: int = 1) -> Tensor:
    """Resample a [num_prefix + gh*gw, D] positional embedding to a new 2-D grid.

    The prefix rows (class / mean token) are kept as they are; the grid rows are reshaped to
    [D, gh, gw] and interpolated bicubically (align_corners False, antialiased when shrinking, as
    open_clip's and timm's own resizers do). At the same grid size the input is returned unchanged.
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if pos_embed.shape[0] != num_prefix + old_grid[0] * old_grid[1]:
        raise ValueError(f"positional embedding of {pos_embed.shape[0]} rows does not match "
                         f"{num_prefix} prefix rows + grid {old_grid}")
    if old_grid == new_grid:
        return pos_embed
    prefix, grid = pos_embed[:num_prefix], pos_embed[num_prefix:]
    grid = grid.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False, antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=0)


def _named_config(name: str) -> dict:
    import open_clip

    cfg = open_clip.get_model_config(name)  # a deep copy: open_clip's registry is never touched
    if cfg is None:
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=5, cutoff=0.6)
        raise ZoolabError(
            f"unknown open_clip model '{name}'",
            where="backbone.name",
            fix=f"use an open_clip architecture name ({', '.join(close) or 'see open_clip.list_models()'})",
        )
    return cfg


def build_clip_model(name: str, model_cfg: dict | None = None, quick_gelu: bool = False) -> nn.Module:
    """open_clip CLIP of the named architecture, random init, ``model_cfg`` deep-merged into its config."""
    import open_clip

    cfg = deep_merge(_named_config(name), dict(model_cfg or {}))
    if cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {}) \
            or "timm_model_name" in cfg.get("vision_cfg", {}):
        raise ZoolabError(
            f"open_clip model '{name}' has a custom (HF/timm) tower; zoolab's CLIP backbone supports the "
            "OpenAI-style CLIP towers only",
            where="backbone.name",
            fix="use an OpenAI-style architecture such as ViT-B-16 or RN50",
        )
    if quick_gelu:
        cfg["quick_gelu"] = True
    # Passing the merged config as model kwargs overrides the named config for this call only.
    return open_clip.create_model(name, pretrained=None, **cfg)


def _load_local_weights(model: nn.Module, weights: str, name: str = "CLIP") -> None:
    """Load a local CLIP checkpoint (.safetensors/.bin/.pth, or an OpenAI TorchScript .pt archive).

    A file that is no checkpoint, or one of another architecture, stops with the short error of
    ``zoolab.backbones.weights_file`` (the file, ``backbone.weights``, the first mismatched keys)."""
    import open_clip

    if sniff_format(weights) == "unknown":
        read_state_dict(weights, name)  # raises the "not a readable checkpoint" error
    try:
        with checked_load_state_dict(model, weights, name, strict=True):
            open_clip.load_checkpoint(model, weights, strict=True, weights_only=True)
        return
    except ZoolabError:
        raise
    except Exception as exc:  # noqa: BLE001 - a reader or converter failure means the file is unusable
        if "TorchScript" not in str(exc):
            first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise unreadable(weights, name, f"open_clip could not read it: {first}") from None
    # OpenAI's original archives are TorchScript, which weights_only loading refuses on torch >= 2.6.
    # Their state-dict keys are open_clip's CLIP keys plus metadata entries (and a scripted open_clip
    # model also carries its causal-mask buffer).
    state_dict = {k: v for k, v in torch.jit.load(weights, map_location="cpu").state_dict().items()
                  if k not in _TORCHSCRIPT_EXTRAS}
    check_fits(model, state_dict, weights, name, strict=True)
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)


class _TextTower(nn.Module):
    """The CLIP text encoder's parts, lifted out of open_clip's CLIP (which stores them flat)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)
        if clip.attn_mask is None:  # running only up to EOT is exact only under the causal mask
            raise ZoolabError("the text tower has no causal attention mask, which the prompt path relies on",
                              where="backbone.model_cfg.text_cfg.no_causal_mask", fix="leave no_causal_mask unset")
        if clip.text_pool_type != "argmax":
            raise ZoolabError(f"text pooling '{clip.text_pool_type}' is not supported (argmax/EOT only)",
                              where="backbone.model_cfg.text_cfg.pool_type", fix="leave pool_type unset")

    def forward(self, embeddings: Tensor, eot_positions: Tensor) -> Tensor:
        """Token embeddings [B, L, W] (L <= context length) -> projected EOT features [B, E].

        Runs only the first ``max(eot)+1`` positions: the causal mask makes them independent of the rest.
        """
        length = int(eot_positions.max()) + 1
        x = embeddings[:, :length] + self.positional_embedding[:length].to(embeddings.dtype)
        mask = self.attn_mask[:length, :length] if self.attn_mask is not None else None
        x = self.transformer(x, attn_mask=mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_positions]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection


class OpenClipBackbone(nn.Module):
    """CLIP image + frozen text encoders from open_clip, offline.

    Args:
        name: open_clip architecture name (``ViT-B-16``, ``RN50``, ...).
        pretrained: load ``weights`` (a local file; required when true, never downloaded).
        weights: local CLIP checkpoint: ``.safetensors``/``.bin``/``.pth`` in open_clip or OpenAI key
            layout (converted by open_clip's loader), or OpenAI's TorchScript ``.pt`` archive.
        image_size: input [H, W]; multiples of the patch size (ViT) or 32 (RN50).
        normalize: apply the OpenAI CLIP mean/std to 0-255 inputs (false: feed them raw).
        model_cfg: overrides deep-merged into open_clip's named config (tiny test models), e.g.
            ``{embed_dim: 32, vision_cfg: {width: 64, layers: 2, head_width: 32}}``.
        quick_gelu: QuickGELU activations, as the OpenAI weights were trained with.
    """

    def __init__(
        self,
        name: str = "ViT-B-16",
        pretrained: bool = False,
        weights: str | None = None,
        image_size: list[int] = [224, 224],  # noqa: B006 - read only; Hydra passes a list
        normalize: bool = True,
        model_cfg: dict | None = None,
        quick_gelu: bool = False,
    ) -> None:
        super().__init__()
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        weights_path = self._check_weights(pretrained, weights)
        clip = build_clip_model(name, _plain(model_cfg), quick_gelu)
        if weights_path is not None:
            _load_local_weights(clip, weights_path, name)
        self.name = name
        self.visual = clip.visual
        self.text = _TextTower(clip)
        self.text.requires_grad_(False)
        self.text.eval()
        self.is_vit = hasattr(self.visual, "transformer")
        if self.is_vit:  # visual(x) returns (pooled @ proj, patch tokens after ln_post, before proj)
            self.visual.output_tokens = True
        self.embed_dim: int = int(self.visual.output_dim)
        self.num_features: int = self.embed_dim
        self.token_dim: int = int(self.text.token_embedding.embedding_dim)
        self.image_size = self._resize_image_tower(list(image_size))
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1) * 255.0)
        self._tokenizer: Any = None
        self._token_cache: dict[str, Tensor] = {}
        # Bumped whenever weights are loaded, so callers caching text features know they are stale.
        self.text_version = 0
        self.register_load_state_dict_post_hook(_bump_text_version)

    # ----------------------------------------------------------------------------------------- build
    @staticmethod
    def _check_weights(pretrained: bool, weights: str | None) -> str | None:
        if not pretrained:
            return None
        if not weights:
            raise ZoolabError(
                "backbone.pretrained=true needs a local CLIP weights file; zoolab never downloads "
                "weights at run time (zoolab reads local weights files only)",
                where="backbone.weights is null",
                fix="download the OpenAI/open_clip checkpoint once and pass backbone.weights=/path/to/file "
                "(.safetensors, .bin, .pth or OpenAI's .pt), or set backbone.pretrained=false (random init), "
                "or add +smoke=cpu",
            )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ZoolabError(
                f"weights file '{weights}' does not exist (zoolab reads local weights files only)",
                where="backbone.weights",
                fix="point backbone.weights at a local CLIP checkpoint, or set backbone.pretrained=false",
            )
        return str(path)

    def _resize_image_tower(self, image_size: list[int]) -> tuple[int, int]:
        if len(image_size) != 2:
            raise ZoolabError(f"backbone.image_size must be [H, W], got {image_size}",
                              where="backbone.image_size",
                              fix="give two integers, e.g. [224, 224] or [256, 128]")
        h, w = (int(v) for v in image_size)
        if self.is_vit:
            ph, pw = self.visual.patch_size
            self._check_divisible(h, w, ph, pw, "the ViT patch size")
            new_grid = (h // ph, w // pw)
            pos = self.visual.positional_embedding
            resized = resize_grid_pos_embed(pos.data, self.visual.grid_size, new_grid)
            self.visual.positional_embedding = nn.Parameter(resized, requires_grad=pos.requires_grad)
            self.visual.image_size, self.visual.grid_size = (h, w), new_grid
        else:
            self._check_divisible(h, w, 32, 32, "the ResNet's stride 32")
            pool = self.visual.attnpool
            side = math.isqrt(pool.positional_embedding.shape[0] - 1)
            resized = resize_grid_pos_embed(pool.positional_embedding.data, (side, side), (h // 32, w // 32))
            trainable = pool.positional_embedding.requires_grad
            pool.positional_embedding = nn.Parameter(resized, requires_grad=trainable)
            self.visual.image_size = (h, w)
        return h, w

    @staticmethod
    def _check_divisible(h: int, w: int, sh: int, sw: int, what: str) -> None:
        if h % sh or w % sw or h <= 0 or w <= 0:
            raise ZoolabError(f"image size [{h}, {w}] is not a multiple of {what} ({sh}x{sw})",
                              where="backbone.image_size",
                              fix=f"use multiples of {sh} (height) and {sw} (width)")

    def train(self, mode: bool = True) -> "OpenClipBackbone":
        """Switch the image tower; the frozen text tower always stays in eval mode."""
        super().train(mode)
        self.text.eval()
        return self

    # ----------------------------------------------------------------------------------------- image
    def preprocess(self, x: Tensor) -> Tensor:
        x = x.float()
        return (x - self.mean) / self.std if self.normalize else x

    def encode_image(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """0-255 images [B, 3, H, W] -> (global [B, embed_dim], tokens [B, N, embed_dim])."""
        x = self.preprocess(x)
        return self._encode_vit(x) if self.is_vit else self._encode_resnet(x)

    def _encode_vit(self, x: Tensor) -> tuple[Tensor, Tensor]:
        visual = self.visual
        pooled, tokens = visual(x)
        if visual.final_ln_after_pool:  # ln_post was applied to the pooled token only
            tokens = visual.ln_post(tokens)
        return pooled, tokens @ visual.proj

    def _encode_resnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        visual = self.visual
        x = visual.stem(x)
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
        pooled = visual.attnpool(x)
        pool = visual.attnpool
        spatial = x.flatten(2).transpose(1, 2) + pool.positional_embedding[1:].to(x.dtype)
        return pooled, pool.c_proj(pool.v_proj(spatial))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.encode_image(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)

    # ------------------------------------------------------------------------------------------ text
    def tokenize(self, texts: list[str]) -> Tensor:
        """CLIP BPE token ids [T, 77] (offline: open_clip ships the vocabulary)."""
        missing = [t for t in texts if t not in self._token_cache]
        if missing:
            if self._tokenizer is None:
                from open_clip.tokenizer import SimpleTokenizer

                self._tokenizer = SimpleTokenizer(context_length=self.text.positional_embedding.shape[0])
            for text, ids in zip(missing, self._tokenizer(missing)):
                self._token_cache[text] = ids
        device = self.text.token_embedding.weight.device
        return torch.stack([self._token_cache[t] for t in texts]).to(device)

    def _eot_positions(self, ids: Tensor) -> Tensor:
        return ids.argmax(dim=-1)  # the EOT id is the largest id in CLIP's vocabulary

    def encode_text(self, texts: list[str]) -> Tensor:
        """Frozen text features [T, embed_dim] (no gradient: the whole tower is frozen)."""
        ids = self.tokenize(list(texts))
        with torch.no_grad():
            return self.text(self.text.token_embedding(ids), self._eot_positions(ids))

    def placeholder_position(self, template: str, placeholder: str = "X") -> int:
        """Index of ``placeholder``'s single token in the tokenized ``template``."""
        word = self.tokenize([placeholder])[0]
        word_ids = word[1:int(word.argmax())]
        if word_ids.numel() != 1:
            raise ZoolabError(
                f"placeholder '{placeholder}' is {word_ids.numel()} BPE tokens; it must be exactly one",
                where="the PromptSG template / placeholder",
                fix="use a single-token placeholder word such as 'X'",
            )
        hits = (self.tokenize([template])[0] == word_ids[0]).nonzero().flatten()
        if hits.numel() != 1:
            raise ZoolabError(
                f"placeholder '{placeholder}' occurs {hits.numel()} times in the prompt '{template}'; "
                "it must occur exactly once",
                where="the PromptSG template",
                fix="write the template with one '{}' slot and no other standalone placeholder word",
            )
        return int(hits[0])

    def encode_text_with_pseudo_token(self, template: str, pseudo: Tensor, placeholder: str = "X") -> Tensor:
        """Text features [B, embed_dim] of ``template`` with the placeholder's token embedding replaced by
        ``pseudo`` [B, token_dim] (one pseudo-word per batch row). Gradients reach ``pseudo``."""
        if pseudo.ndim != 2 or pseudo.shape[1] != self.token_dim:
            raise ValueError(f"pseudo must be [B, {self.token_dim}], got {tuple(pseudo.shape)}")
        position = self.placeholder_position(template, placeholder)
        ids = self.tokenize([template])
        embeddings = self.text.token_embedding(ids).expand(pseudo.shape[0], -1, -1)
        embeddings = torch.cat([embeddings[:, :position], pseudo[:, None].to(embeddings.dtype),
                                embeddings[:, position + 1:]], dim=1)
        eot = self._eot_positions(ids).expand(pseudo.shape[0])
        return self.text(embeddings, eot)


def _bump_text_version(module: OpenClipBackbone, incompatible_keys: Any) -> None:
    module.text_version += 1


def _plain(cfg: Any) -> dict | None:
    """A Hydra DictConfig (or None) as a plain dict."""
    if cfg is None:
        return None
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(cfg)
