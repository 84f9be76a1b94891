"""Benchmarks: the product's claims of speed, size and cost, each measured and printed beside its budget.

``python -m benchmarks`` (what ``nox -s bench`` runs) runs them all; ``--only idle,deploy,cost`` a subset.
Results also go to ``.dagops/bench/results.json``. A missed budget is a FAIL row in the table, not an
error: the exit code is non-zero only when a benchmark could not run.
"""
