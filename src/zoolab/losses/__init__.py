"""Losses for heads trained on cached embeddings: long-tail cross-entropy, SupCon and center loss.

Submodules are imported by their users (``zoolab.losses.long_tail``, ``.supcon``, ``.center``);
this package imports nothing so that ``import zoolab.losses`` stays inert.
"""
