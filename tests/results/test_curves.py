"""Training curves from metrics.csv: per-epoch values (the last logged in each epoch), one panel per
quantity, a real PNG; and every trained run folder gets one."""

from __future__ import annotations

import io

from PIL import Image

from zoolab.results.curves import epoch_curves, training_curves_png

CSV = """epoch,step,train/loss,val/acc,lr-AdamW
0,4,,0.50,
0,4,1.20,,0.001
1,9,,0.75,
1,9,0.80,,0.0005
2,14,,0.70,
2,14,0.60,,0.00025
"""


def test_epoch_curves_hold_the_values_of_each_epoch(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    curves = epoch_curves(path)
    assert list(curves.index) == [0, 1, 2]
    assert curves["train/loss"].tolist() == [1.2, 0.8, 0.6]
    assert curves["val/acc"].tolist() == [0.5, 0.75, 0.7]
    assert curves["lr-AdamW"].tolist() == [0.001, 0.0005, 0.00025]


def test_curves_png_has_a_panel_per_quantity(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    image = Image.open(io.BytesIO(training_curves_png(path, title="demo")))
    width, height = image.size
    assert width >= 3 * 400 and height >= 300  # three panels side by side
    pixels = image.convert("L").getextrema()
    assert pixels[0] < 100 and pixels[1] > 200  # lines and text on a light background, not blank


def test_no_epochs_no_picture(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss\n")
    assert training_curves_png(path) is None
