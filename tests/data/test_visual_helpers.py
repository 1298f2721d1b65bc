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


class _Split:
    image_ids = [7, 3, 11, 5, 9]

    def __len__(self):
        return len(self.image_ids)


def _selection(**task):
    from omegaconf import OmegaConf

    from zoolab.families.visualize import VisualizeFamily

    cfg = OmegaConf.create({"task": {"split": "val", "num_images": None, "sample": None, "sample_seed": 0, **task}})
    return VisualizeFamily(cfg)._selection(_Split())


def test_selection_is_the_whole_split_the_first_n_or_a_seeded_sample():
    assert _selection() == ([0, 1, 2, 3, 4], "val")
    assert _selection(num_images=2) == ([0, 1], "val")
    assert _selection(num_images=50) == ([0, 1, 2, 3, 4], "val")
    indices, folder = _selection(sample=2, sample_seed=1)
    assert folder == "val_sample2" and len(indices) == 2
    wanted = sample_image_ids(_Split.image_ids, 2, 1)
    assert sorted(_Split.image_ids[i] for i in indices) == wanted
