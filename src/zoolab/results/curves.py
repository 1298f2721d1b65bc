"""Training curves of a fit, drawn from its ``metrics.csv``: per epoch, the losses (train and val in one
panel), each metric (train and val together), and the learning rate of every parameter group."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

__all__ = ["curve_panels", "epoch_curves", "training_curves_png"]

_LR_PANEL = "learning rate"


def epoch_curves(csv_path: str | Path) -> pd.DataFrame:
    """Per epoch (index), the last value logged in that epoch of every numeric column of ``csv_path``.

    Lightning's LearningRateMonitor (``logging_interval: epoch``) writes its row at the start of an epoch
    with a step but no epoch; such a row belongs to the epoch of the rows that follow it.
    """
    frame = pd.read_csv(csv_path)
    if "epoch" not in frame or frame.empty:
        return pd.DataFrame()
    frame["epoch"] = frame["epoch"].bfill()
    values = frame.drop(columns="step", errors="ignore")
    values = values.dropna(subset=["epoch"]).astype({"epoch": int})
    curves = values.groupby("epoch").last()   # last non-null value of each column in the epoch
    return curves.dropna(axis=1, how="all").sort_index()


def curve_panels(columns: list[str]) -> dict[str, list[str]]:
    """Panel title -> the columns drawn in it: ``train/loss`` and ``val/loss`` share "loss", ``train/acc``
    and ``val/acc`` share "acc", every ``lr-*`` column goes to "learning rate". Losses come first, then
    metrics, then the learning rate."""
    panels: dict[str, list[str]] = {}
    for column in columns:
        title = _LR_PANEL if column.startswith("lr-") else column.rsplit("/", 1)[-1]
        panels.setdefault(title, []).append(column)

    def order(title: str) -> tuple[int, str]:
        return (2 if title == _LR_PANEL else 0 if "loss" in title else 1), title

    return {title: sorted(panels[title]) for title in sorted(panels, key=order)}


def training_curves_png(csv_path: str | Path, title: str = "", columns_per_row: int = 3) -> bytes | None:
    """The curves of ``csv_path`` as PNG bytes, panels as :func:`curve_panels` groups them (at most
    ``columns_per_row`` per row), or None when it holds no epoch values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = epoch_curves(csv_path)
    if curves.empty:
        return None
    panels = curve_panels(list(curves.columns))
    ncols = min(columns_per_row, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.2 * nrows + (0.4 if title else 0)))
    FigureCanvasAgg(fig)
    for index, (panel, columns) in enumerate(panels.items(), start=1):
        ax = fig.add_subplot(nrows, ncols, index)
        for column in columns:
            series = curves[column].dropna()
            label = column.removeprefix("lr-") if panel == _LR_PANEL else column
            ax.plot(series.index, series.values, marker="o", markersize=3, label=label)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(columns) > 1:
            ax.legend(fontsize=7)
        if panel == _LR_PANEL:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
