"""The one exception type users see: what went wrong, where, and how to fix it."""

from __future__ import annotations

__all__ = ["ZoolabError"]


class ZoolabError(ValueError):
    """A user-facing error, printed as one paragraph without a traceback.

    Args:
        what: what is wrong, naming the bad value.
        where: the config key, file or folder involved.
        fix: the override or action that fixes it.
    """

    def __init__(self, what: str, where: str = "", fix: str = "") -> None:
        self.what, self.where, self.fix = what, where, fix
        parts = [what.rstrip(".") + "."]
        if where:
            parts.append(f"Where: {where}.")
        if fix:
            parts.append(f"Fix: {fix.rstrip('.')}.")
        super().__init__(" ".join(parts))
