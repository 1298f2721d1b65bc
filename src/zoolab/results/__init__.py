"""Results: read run folders from disk and build the sweep tables and report tables.

``aggregate`` turns every run folder (a directory holding ``run.json``) into a row, folds
seeds into ``mean ± std (n seeds)`` groups and writes ``results.tsv`` / ``results.md``. ``reports/<name>.py``
renders one family's report tables from the same rows. ``python -m zoolab.results DIR`` rebuilds the tables
for any folder tree of runs, also after a crashed multirun, because it reads only files on disk.
"""
