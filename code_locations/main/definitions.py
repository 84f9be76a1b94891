"""Code location ``main``: the ``defs`` of every module of ``pipelines/``, merged, plus the shared resources.

A new module in ``pipelines/`` that exports ``defs = dg.Definitions(...)`` (``invoke create --name
my_pipeline`` writes one) is picked up without touching this file; modules without ``defs`` are helpers.
The code server runs this file as ``dagster api grpc --python-file definitions.py --working-directory .``.
"""

import importlib
import pkgutil
import sys
from pathlib import Path

import dagster as dg

# Loaded by path (``--python-file``), possibly from another folder: make this folder importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import pipelines  # noqa: E402
from resources import RESOURCES  # noqa: E402

PIPELINES = [importlib.import_module(f"pipelines.{m.name}") for m in pkgutil.iter_modules(pipelines.__path__)]

defs = dg.Definitions.merge(
    *(m.defs for m in PIPELINES if isinstance(getattr(m, "defs", None), dg.Definitions)),
    dg.Definitions(resources=RESOURCES),
)
