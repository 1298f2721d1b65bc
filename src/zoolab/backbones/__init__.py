"""Backbone factories. Each exposes ``forward_features`` and ``num_features`` (or per-level channels)."""
