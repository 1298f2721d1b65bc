"""zoolab: one config-driven framework that trains, evaluates and tabulates model zoos.

Importing the package has no side effects. The entry point is the ``zoolab`` console script, the same
program as ``python -m zoolab``; its Hydra configs are the package ``zoolab.conf`` (the repository's
``conf/``, shipped as package data).
"""

__version__ = "0.1.0"
