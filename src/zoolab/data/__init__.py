"""Datasets in their real on-disk formats, and generators that write synthetic data in those formats."""
