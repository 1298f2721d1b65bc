"""Evaluation metrics as pure functions: classification reports, pit thresholds, COCO mAP, re-ID ranking,
calibration and CPU latency. Figures come back as PNG bytes; nothing here writes a file.

Submodules are imported by their users (``zoolab.metrics.classification``, ``.threshold``,
``.latency``); this package imports nothing so that ``import zoolab.metrics`` stays inert.
"""
