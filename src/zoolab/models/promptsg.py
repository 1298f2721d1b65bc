"""PromptSG: prompt-driven semantic guidance for re-ID (Yang et al., "A Pedestrian is Worth One Prompt:
Towards Language Guidance Person Re-Identification", CVPR 2024), and a replay of CLIP-FH's Stage-3 model.

``mode="paper"`` (PromptSG as published):

1. An inversion network (fc-ReLU-fc-ReLU-fc-BN, ``inversion_hidden`` wide) maps the CLIP image feature v
   to a pseudo-word s* in the text token-embedding space (``token_dim``).
2. s* replaces the placeholder of the composed prompt (``template``, e.g. "A photo of a {} person.") and
   the frozen CLIP text encoder gives the text feature t (``encode_text_with_pseudo_token``).
3. Cross-attention with t as the query and the image tokens as keys/values, with a residual and a
   LayerNorm (``cross_layers`` such blocks): q = LN(t + Attn(t, [v, patches])). The global token v is
   included among the keys/values so the query can also draw on CLIP's own pooled feature.
4. ``self_layers`` pre-norm Transformer encoder layers (GELU, FFN 2048, final LayerNorm) over the sequence
   [q, v, patch tokens]; the output at the query position is the re-ID feature. Reading: the paper's "1
   cross + 2 self" with the language-guided token as the sequence's summary token. The third-party
   NTDuckk/PromptSG_2 instead uses only the cross-attention *weights* to re-weight the patch tokens and
   takes the class-token output of the encoder; both make the feature depend on the prompt, and running
   the self-attention over the query alone would reduce it to a per-token MLP, so the sequence reading is
   the one kept here.
5. At inference, when ``inference_template`` is set, the text feature of that simplified prompt ("A photo
   of a person.", computed once and cached) is the query (NTDuckk's ``TEST_MODE simplified``).

``mode="clipfh"`` replays what CLIP-FH's Stage-3 code actually computed (quirks #1-#4 of the numbered list in
docs/reid.md): the template is split at "{}" into a prefix and a suffix sentence, each encoded whole by the
text encoder; with the inversion MLP's output (in image-feature space, quirk 3) they form 3 query tokens; the
cross-attention keys/values are the single global image token (quirk 1, no residual), so the attention weights
are all 1 and every query becomes out_proj(v_proj(v)): the prompt and the inversion MLP cannot influence the
feature, and the MLP gets exactly zero gradient from the ID/triplet losses. Then ``self_layers`` post-norm
``nn.TransformerEncoderLayer`` (ReLU, FFN 2048; 3 in the original, quirk 4), the mean of the 3 tokens, L2
normalisation and dropout ``dropout`` (0.1 in the original, which used that value everywhere).
``inference_template`` is ignored in this mode (the original's eval-time template change, quirk 10, could not
change the feature either).

``forward`` returns ``feature`` (the re-ID feature), ``image_feature`` (CLIP's global image feature),
``text_feature`` (the prompt's text feature, or in clipfh mode the mean of the 3 query tokens, which is
what the original's SupCon term saw) and ``pseudo_token``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoolab.errors import ZoolabError

__all__ = ["PromptSG", "InversionMLP"]

_MODES = ("paper", "clipfh")
_PLACEHOLDER = "X"
_FFN_DIM = 2048


class InversionMLP(nn.Sequential):
    """fc-ReLU-fc-ReLU-fc-BN: image feature [B, in_dim] -> pseudo-token [B, out_dim]."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim),
        )


class _CrossAttentionBlock(nn.Module):
    """q <- LayerNorm(q + MultiheadAttention(q, kv, kv))."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, query: Tensor, kv: Tensor) -> Tensor:
        return self.norm(query + self.attn(query, kv, kv, need_weights=False)[0])


class PromptSG(nn.Module):
    """Prompt-guided re-ID feature on top of a CLIP backbone (``OpenClipBackbone``).

    Args:
        embed_dim: CLIP joint embedding width (backbone.embed_dim).
        token_dim: text token-embedding width (backbone.token_dim).
        mode: ``paper`` (PromptSG) or ``clipfh`` (CLIP-FH's effective computation).
        template: the composed prompt with one ``{}`` slot for the pseudo-word.
        inference_template: paper mode: the simplified prompt used at inference (None: keep composing).
        inversion_hidden: hidden width of the inversion MLP.
        cross_layers: cross-attention blocks (paper mode; clipfh has exactly one).
        self_layers: self-attention Transformer layers after the cross-attention.
        num_heads: attention heads (embed_dim must be divisible by it).
        dropout: attention/FFN dropout (clipfh: also the dropout on the final feature).
        feature_dropout: paper mode: dropout on the final re-ID feature.
    """

    def __init__(
        self,
        embed_dim: int,
        token_dim: int,
        mode: str = "paper",
        template: str = "A photo of a {} person.",
        inference_template: str | None = "A photo of a person.",
        inversion_hidden: int = 512,
        cross_layers: int = 1,
        self_layers: int = 2,
        num_heads: int = 8,
        dropout: float = 0.1,
        feature_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _validate(mode, template, embed_dim, num_heads, cross_layers, self_layers)
        self.mode = mode
        self.template = template
        self.inference_template = inference_template
        self.embed_dim, self.token_dim = embed_dim, token_dim
        if mode == "paper":
            self.inversion = InversionMLP(embed_dim, inversion_hidden, token_dim)
            self.cross = nn.ModuleList(
                _CrossAttentionBlock(embed_dim, num_heads, dropout) for _ in range(cross_layers))
            layer = nn.TransformerEncoderLayer(embed_dim, num_heads, _FFN_DIM, dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.Identity() if not self_layers else nn.TransformerEncoder(
                layer, self_layers, norm=nn.LayerNorm(embed_dim), enable_nested_tensor=False)
            self.feature_dropout = nn.Dropout(feature_dropout)
        else:
            self.inversion = InversionMLP(embed_dim, inversion_hidden, embed_dim)
            self.cross_attention = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(embed_dim, num_heads, _FFN_DIM, dropout, batch_first=True)
                for _ in range(self_layers))
            self.feature_dropout = nn.Dropout(dropout)
        # Frozen-text features per prompt tuple: {texts: (text_version, device, features)}; not a state.
        self._text_cache: dict[tuple[str, ...], tuple[Any, torch.device, Tensor]] = {}

    # ------------------------------------------------------------------------------------------ text
    def cached_text_features(self, backbone: nn.Module, texts: tuple[str, ...]) -> Tensor:
        """Frozen text features [T, embed_dim] of fixed prompts, recomputed only when the prompts, the
        device or the backbone's weights (``text_version``) change."""
        device = backbone.text.token_embedding.weight.device
        version = (id(backbone), getattr(backbone, "text_version", 0))
        hit = self._text_cache.get(texts)
        if hit is None or hit[0] != version or hit[1] != device:
            hit = (version, device, backbone.encode_text(list(texts)).detach())
            self._text_cache[texts] = hit
        return hit[2]

    # --------------------------------------------------------------------------------------- forward
    def forward(self, backbone: nn.Module, images: Tensor, training: bool) -> dict[str, Tensor | None]:
        """images [B, 3, H, W] (0-255) -> dict(feature, image_feature, text_feature, pseudo_token)."""
        image_feature, tokens = backbone.encode_image(images)
        if self.mode == "paper":
            return self._forward_paper(backbone, image_feature, tokens, training)
        return self._forward_clipfh(backbone, image_feature)

    def _forward_paper(self, backbone: nn.Module, image_feature: Tensor, tokens: Tensor,
                       training: bool) -> dict[str, Tensor | None]:
        pseudo = self.inversion(image_feature)
        if not training and self.inference_template is not None:
            text = self.cached_text_features(backbone, (self.inference_template,))
            text = text.expand(image_feature.shape[0], -1)
        else:
            prompt = self.template.format(_PLACEHOLDER)
            text = backbone.encode_text_with_pseudo_token(prompt, pseudo, _PLACEHOLDER)
        visual = torch.cat([image_feature[:, None], tokens], dim=1)
        query = text[:, None].to(visual.dtype)
        for block in self.cross:
            query = block(query, visual)
        feature = self.blocks(torch.cat([query, visual], dim=1))[:, 0]
        return {"feature": self.feature_dropout(feature), "image_feature": image_feature,
                "text_feature": text, "pseudo_token": pseudo}

    def _forward_clipfh(self, backbone: nn.Module, image_feature: Tensor) -> dict[str, Tensor | None]:
        prefix, suffix = (part.strip() for part in self.template.split("{}"))
        sentences = self.cached_text_features(backbone, (prefix, suffix)).to(image_feature.dtype)
        batch = image_feature.shape[0]
        pseudo = self.inversion(image_feature)
        queries = torch.stack([sentences[0].expand(batch, -1), pseudo, sentences[1].expand(batch, -1)], dim=1)
        kv = image_feature[:, None]
        # need_weights=True takes MultiheadAttention's explicit softmax path, as the original did: the
        # softmax over one key is exactly 1 and its backward exactly 0.
        x = self.cross_attention(queries, kv, kv, need_weights=True)[0]
        for block in self.blocks:
            x = block(x)
        feature = self.feature_dropout(F.normalize(x.mean(dim=1), dim=1))
        return {"feature": feature, "image_feature": image_feature,
                "text_feature": queries.mean(dim=1), "pseudo_token": pseudo}


def _validate(mode: str, template: str, embed_dim: int, num_heads: int, cross_layers: int,
              self_layers: int) -> None:
    if mode not in _MODES:
        raise ZoolabError(f"unknown promptsg.mode '{mode}'", where="promptsg.mode",
                          fix=f"use one of {', '.join(_MODES)}")
    if template.count("{}") != 1:
        raise ZoolabError(f"the PromptSG template '{template}' must contain exactly one '{{}}' slot",
                          where="promptsg.template", fix="write it like 'A photo of a {} person.'")
    if embed_dim % num_heads:
        raise ZoolabError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}",
                          where="promptsg.num_heads",
                          fix="use a head count dividing the CLIP embedding width")
    if cross_layers < 1 or self_layers < 0 or (mode == "clipfh" and cross_layers != 1):
        raise ZoolabError(f"invalid layer counts cross_layers={cross_layers}, self_layers={self_layers} "
                          f"for mode '{mode}'", where="promptsg.cross_layers / promptsg.self_layers",
                          fix="use cross_layers >= 1 (exactly 1 in clipfh mode) and self_layers >= 0")
