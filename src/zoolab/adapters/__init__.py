"""Adapters decide which backbone parameters train and at which learning rate.

Every adapter has ``apply(module) -> module`` and ``param_groups(module, lr) -> list[dict]``.
"""
