"""Evaluators: ``reset()``, ``process(**outputs)`` per batch, ``evaluate() -> Evaluation`` (metrics and PNG
figures), one module per family (``classification``, ``foreground``, ``coco``, ``reid``). The interface is
in ``zoolab.evaluators.base``; submodules are imported by their users."""
