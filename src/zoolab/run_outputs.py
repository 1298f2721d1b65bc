"""The one writer of a run folder: every file a run leaves is written through :class:`RunOutputs`.

Families and the pipeline hand it data (JSON, text, images, weights); it writes atomically, creates
sub-folders on demand and keeps ``run.json`` (through :class:`~zoolab.runfolder.RunRecord`) current.
On DDP ranks other than 0 (a record that does not persist) every write is skipped: rank 0 writes the
same data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from zoolab.runfolder import RunRecord, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["RunOutputs", "ADAPTER_CONTENT"]

log = logging.getLogger(__name__)
# safetensors metadata "content" of a file holding only the trained tensors (e.g. LoRA + neck + head)
ADAPTER_CONTENT = "trained parameters only"


class RunOutputs:
    """Paths and atomic writers of one run folder."""

    def __init__(self, run_dir: Path, record: RunRecord) -> None:
        self.run_dir = Path(run_dir)
        self.record = record

    def path(self, relative: str | Path) -> Path:
        return self.run_dir / relative

    @property
    def plots_dir(self) -> Path:
        return self.run_dir / "plots"

    def relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.run_dir.resolve()).as_posix()

    @property
    def writes(self) -> bool:
        return self.record.persist

    def write_json(self, relative: str | Path, data: Any) -> Path:
        return write_json_atomic(self.path(relative), data) if self.writes else self.path(relative)

    def write_text(self, relative: str | Path, text: str) -> Path:
        return write_text_atomic(self.path(relative), text) if self.writes else self.path(relative)

    def write_bytes(self, relative: str | Path, data: bytes) -> Path:
        """Raw bytes (e.g. an encoded PNG figure), atomically."""
        return write_bytes_atomic(self.path(relative), bytes(data)) if self.writes else self.path(relative)

    def write_png(self, relative: str | Path, image: torch.Tensor) -> Path:
        """A uint8 ``[C, H, W]`` image as PNG, atomically."""
        from torchvision.io import encode_png

        return self.write_bytes(relative, encode_png(image.cpu()).numpy().tobytes())

    def write_safetensors(self, relative: str | Path, state: dict[str, torch.Tensor],
                          metadata: dict[str, str] | None = None) -> Path:
        from safetensors.torch import save

        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        return self.write_bytes(relative, save(tensors, metadata={"format": "pt", **(metadata or {})}))
