"""The scripts under ``benchmarks/`` as modules the tests share.

Each script is loaded once per process under its own name: two test modules that each loaded their own copy would
hold two ``simulator_accuracy.Comparison`` classes, and objects of the one not registered in ``sys.modules`` cannot be
pickled (the accuracy tests share their simulations between xdist workers through a pickle)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
# Scripts that import another one by its plain name: that one is registered first, so the import finds the shared
# copy instead of loading its own (kv_cache_check falls back to ``benchmarks.simulator_accuracy`` otherwise).
IMPORTS = {"kv_cache_check": ("simulator_accuracy",)}


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, loaded and registered as ``name`` the first time it is asked for."""
    if (loaded := sys.modules.get(name)) is not None:
        return loaded
    for imported in IMPORTS.get(name, ()):
        benchmark_script(imported)
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses resolve their annotations through it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # no half-loaded module for the next caller
        raise
    return module
