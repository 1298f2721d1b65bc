"""Evaluation metrics as pure functions: classification reports, pit thresholds and CPU latency.

Submodules are imported by their users (``zoolab.metrics.classification``, ``.threshold``,
``.latency``); this package imports nothing so that ``import zoolab.metrics`` stays inert.
"""
