"""Report renderers: one module per family, each exposing ``render(rows: list[dict]) -> str``.

``rows`` are the dicts from :func:`zoolab.results.aggregate.load_run`; a renderer groups them with
:func:`zoolab.results.aggregate.group_rows` and returns markdown shaped like its report's own tables.
A new family adds one file here and is then reachable as
``python -m zoolab.results DIR --report <module name>``. No registry: the module name is the report name.
A renderer outside the package is given by its dotted path, ``--report pkg.module`` (its ``render``) or
``--report pkg.module:function``.
"""
