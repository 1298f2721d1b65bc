"""Re-identification: the default hooks plus ranked-gallery strips of each evaluated split.

``plots/ranked_<split>.png`` shows the first queries of the split (of its first single-gallery split for
the hand protocol), each followed by its top-5 gallery matches by cosine distance, framed green where the
identity is right and red where it is wrong, with the rank-1 hit rate of those queries in the title.
"""

from __future__ import annotations

import io

import torch
from PIL import Image, ImageDraw

from zoolab.families.base import Family

__all__ = ["ReidFamily", "ranked_gallery_png"]

GREEN, RED, GREY = (40, 160, 60), (210, 40, 40), (120, 120, 120)


def _tile(image: torch.Tensor, colour: tuple[int, int, int], height: int, border: int = 4) -> Image.Image:
    array = image.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    picture = Image.fromarray(array)
    picture = picture.resize((max(1, round(picture.width * height / picture.height)), height))
    framed = Image.new("RGB", (picture.width + 2 * border, picture.height + 2 * border), colour)
    framed.paste(picture, (border, border))
    return framed


def ranked_gallery_png(dataset, strips: list[dict], title: str = "", height: int = 96) -> bytes:
    """One row per strip: the query (grey frame), a gap, then its ranked gallery images (green: same
    identity, red: another one), each labelled with its rank; as PNG bytes."""
    rows = []
    for strip in strips:
        tiles = [_tile(dataset[strip["query"]][0], GREY, height)]
        tiles += [_tile(dataset[g][0], GREEN if ok else RED, height) for g, ok in zip(strip["gallery"], strip["correct"])]
        width = sum(t.width for t in tiles) + 16 + 4 * len(tiles)
        row = Image.new("RGB", (width, tiles[0].height + 14), (255, 255, 255))
        x = 0
        for i, tile in enumerate(tiles):
            row.paste(tile, (x, 14))
            ImageDraw.Draw(row).text((x + 2, 1), "query" if i == 0 else f"#{i}", fill=(0, 0, 0))
            x += tile.width + (20 if i == 0 else 4)
        rows.append(row)
    width = max((r.width for r in rows), default=200)
    sheet = Image.new("RGB", (width, 18 + sum(r.height + 6 for r in rows)), (255, 255, 255))
    ImageDraw.Draw(sheet).text((4, 3), title, fill=(0, 0, 0))
    y = 18
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 6
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


class ReidFamily(Family):
    #: queries shown per split and gallery matches per query
    strip_queries, strip_top_k = 6, 5

    def split_figures(self, task, datamodule, split: str) -> dict[str, bytes]:
        strips = task.evaluator.ranked(self.strip_queries, self.strip_top_k)
        hits = sum(s["correct"][0] for s in strips if s["correct"])
        title = f"{self.cfg.exp} · {split} · top-{self.strip_top_k} of {len(strips)} queries · rank-1 {hits}/{len(strips)}"
        return {f"ranked_{split}.png": ranked_gallery_png(datamodule.dataset(split), strips, title)}
