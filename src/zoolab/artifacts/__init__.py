"""The zoo's artifacts and releases: inventory, materialized runs, packages, release bundles, the ledger.

``python -m zoolab.artifacts`` (or ``zoolab artifacts``) with a command: ``check`` (``inventory``),
``materialize`` (``materialize``), ``package`` and ``release`` (``bundle``), ``ledger`` (``ledger``);
``experiments`` reads ``conf/exp`` and the Makefile's reproduce targets for all of them. See
``docs/artifacts.md``.
"""
