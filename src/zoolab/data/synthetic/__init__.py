"""Synthetic data generators: each writes the real dataset format into a cache folder."""
