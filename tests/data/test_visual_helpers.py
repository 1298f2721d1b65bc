"""Visual-export helpers: the seeded sample of image ids and the legend band."""

from __future__ import annotations

import torch

from zoolab.tasks.visualize import GT_COLOUR, paint_detections, sample_image_ids, with_legend


def test_sample_is_seeded_sorted_and_independent_of_id_order():
    ids = list(range(100, 200))
    first = sample_image_ids(ids, 10, seed=3)
    assert first == sorted(first) and len(set(first)) == 10 and set(first) <= set(ids)
    assert sample_image_ids(list(reversed(ids)), 10, seed=3) == first
    assert sample_image_ids(ids, 10, seed=4) != first
    assert sample_image_ids(ids[:5], 10, seed=3) == ids[:5]


def test_legend_band_shows_ground_truth_and_every_class_colour():
    image = torch.zeros(3, 64, 240)
    painted = paint_detections(image, torch.tensor([[5.0, 5.0, 30.0, 30.0]]), torch.tensor([[10.0, 10.0, 40.0, 40.0]]),
                               torch.tensor([0.9]), torch.tensor([1]), ["ship", "car"])
    framed = with_legend(painted, ["ship", "car"])
    assert framed.shape[0] == 3 and framed.shape[2] == 240 and framed.shape[1] > 64
    band = framed[:, 64:, :]
    green = torch.tensor([int(GT_COLOUR[i:i + 2], 16) for i in (1, 3, 5)], dtype=torch.uint8)
    assert (band == green[:, None, None]).all(0).any()  # the ground-truth swatch
    assert torch.equal(framed[:, :64], painted)
