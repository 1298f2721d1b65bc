"""Training curves from metrics.csv as Lightning writes it: per-epoch values (the last logged in each
epoch, learning-rate rows included), panels grouped by quantity, a real PNG; and every trained run folder
gets one."""

from __future__ import annotations

import io

from PIL import Image

from zoolab.results.curves import curve_panels, epoch_curves, training_curves_png

# Lightning's CSVLogger layout: the LearningRateMonitor row (logging_interval: epoch) opens each epoch with
# a step and no epoch; validation and training rows of the epoch follow.
CSV = """epoch,lr-AdamW/backbone,lr-AdamW/head,step,train/acc,train/loss,val/acc,val/loss
,0.0001,0.001,0,,,,
0,,,14,,,0.50,0.90
0,,,14,0.40,1.20,,
,0.00005,0.0005,15,,,,
1,,,29,,,0.75,0.70
1,,,29,0.60,0.80,,
,0.000025,0.00025,30,,,,
2,,,44,,,0.70,0.65
2,,,44,0.80,0.60,,
"""


def test_epoch_curves_hold_the_values_of_each_epoch(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    curves = epoch_curves(path)
    assert list(curves.index) == [0, 1, 2]
    assert curves["train/loss"].tolist() == [1.2, 0.8, 0.6]
    assert curves["val/acc"].tolist() == [0.5, 0.75, 0.7]
    assert curves["lr-AdamW/head"].tolist() == [0.001, 0.0005, 0.00025]
    assert curves["lr-AdamW/backbone"].tolist() == [0.0001, 0.00005, 0.000025]


def test_a_learning_rate_row_without_a_following_epoch_is_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV + ",0.00001,0.0001,45,,,,\n")   # a run stopped right after the monitor's row
    assert epoch_curves(path)["lr-AdamW/head"].tolist() == [0.001, 0.0005, 0.00025]


def test_panels_group_train_and_val_and_every_learning_rate():
    panels = curve_panels(["lr-AdamW/head", "train/acc", "val/loss", "lr-AdamW/backbone", "val/acc",
                           "train/loss", "val/f1"])
    assert panels == {"loss": ["train/loss", "val/loss"], "acc": ["train/acc", "val/acc"], "f1": ["val/f1"],
                      "learning rate": ["lr-AdamW/backbone", "lr-AdamW/head"]}


def test_curves_png_has_a_panel_per_quantity(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    image = Image.open(io.BytesIO(training_curves_png(path, title="demo")))
    width, height = image.size
    assert width >= 3 * 400 and height >= 300  # loss, acc and learning rate side by side
    pixels = image.convert("L").getextrema()
    assert pixels[0] < 100 and pixels[1] > 200  # lines and text on a light background, not blank


def test_more_than_three_panels_wrap_onto_a_second_row(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/acc,val/f1,val/recall,lr-SGD\n0,4,1.0,0.5,0.4,0.3,0.1\n"
                    "1,9,0.8,0.6,0.5,0.4,0.05\n")
    one_row = Image.open(io.BytesIO(training_curves_png(path, columns_per_row=5))).size
    two_rows = Image.open(io.BytesIO(training_curves_png(path))).size
    assert two_rows[1] > 1.8 * one_row[1] and two_rows[0] < one_row[0]


def test_no_epochs_no_picture(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss\n")
    assert training_curves_png(path) is None
