"""Whole re-ID models built on a backbone (``zoolab.models.promptsg``); imported by their users, so
``import zoolab.models`` stays inert."""
