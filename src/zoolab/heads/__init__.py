"""Heads: small modules sized from the backbone's ``num_features``."""
