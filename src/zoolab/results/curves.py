"""Training curves of a fit, drawn from its ``metrics.csv``: one panel per logged quantity (losses,
validation metrics, learning rates), its value at the end of every epoch."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

__all__ = ["epoch_curves", "training_curves_png"]

_INDEX_COLUMNS = ("epoch", "step")


def epoch_curves(csv_path: str | Path) -> pd.DataFrame:
    """Per epoch (index), the last value logged in that epoch of every numeric column of ``csv_path``."""
    frame = pd.read_csv(csv_path)
    if "epoch" not in frame or frame.empty:
        return pd.DataFrame()
    values = frame.drop(columns=[c for c in _INDEX_COLUMNS if c in frame and c != "epoch"])
    values = values.dropna(subset=["epoch"]).astype({"epoch": int})
    curves = values.groupby("epoch").last()   # last non-null value of each column in the epoch
    return curves.dropna(axis=1, how="all").sort_index()


def _panel_order(column: str) -> tuple[int, str]:
    kind = 0 if "loss" in column else 2 if column.startswith(("lr", "lr-")) else 1
    return kind, column


def training_curves_png(csv_path: str | Path, title: str = "") -> bytes | None:
    """The curves of ``csv_path`` as PNG bytes (losses first, then metrics, then learning rates), or None
    when it holds no epoch values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = epoch_curves(csv_path)
    if curves.empty:
        return None
    columns = sorted(curves.columns, key=_panel_order)
    fig = Figure(figsize=(4.2 * len(columns), 3.4))
    FigureCanvasAgg(fig)
    for index, column in enumerate(columns, start=1):
        ax = fig.add_subplot(1, len(columns), index)
        series = curves[column].dropna()
        ax.plot(series.index, series.values, marker="o", markersize=3)
        ax.set_title(column)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if column.startswith("lr"):
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
