"""zoolab's Hydra configs, shipped as the package ``zoolab.conf`` (``config_path="pkg://zoolab.conf"``).

This folder holds no code: the file only makes the folder a package, which Hydra needs to find a
``pkg://`` config source and setuptools needs to ship the YAML files as package data.
"""
