"""The detection recipe's LR schedule: 500-iteration linear warm-up from 0.001x, x0.1 at epochs 8 and 11."""

from __future__ import annotations

import pytest
import torch

from zoolab.errors import ZoolabError
from zoolab.schedules import warmup_multistep, warmup_multistep_factor


@pytest.mark.parametrize("iteration, expected", [
    (0, 0.001), (250, 0.001 + 0.999 * 0.5), (499, 0.001 + 0.999 * 499 / 500), (500, 1.0),
    (8 * 1000 - 1, 1.0), (8 * 1000, 0.1), (11 * 1000 - 1, 0.1), (11 * 1000, 0.01), (12 * 1000 - 1, 0.01),
])
def test_factor_at_the_recipe_boundaries(iteration, expected):
    assert warmup_multistep_factor(iteration, iters_per_epoch=1000) == pytest.approx(expected, rel=1e-12)


def test_warmup_and_decay_overlap_multiply():
    # With 50 iterations per epoch, epoch 8 starts at iteration 400, inside the 500-iteration warm-up.
    assert warmup_multistep_factor(400, iters_per_epoch=50) == pytest.approx(0.1 * (0.001 + 0.999 * 0.8))


def test_scheduler_steps_every_iteration():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1e-4)
    scheduler = warmup_multistep(optimizer, iters_per_epoch=10, warmup_iters=5, milestones=[2])
    lrs = []
    for _ in range(25):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-7)
    assert lrs[5] == pytest.approx(1e-4) and lrs[19] == pytest.approx(1e-4)
    assert lrs[20] == pytest.approx(1e-5)


def test_bad_warmup_is_a_clear_error():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ZoolabError, match="warmup_ratio"):
        warmup_multistep(optimizer, iters_per_epoch=10, warmup_ratio=0.0)
