"""zoolab: one config-driven framework that trains, evaluates and tabulates model zoos.

Importing the package has no side effects; the entry point is ``python -m zoolab``.
"""

__version__ = "0.1.0"
