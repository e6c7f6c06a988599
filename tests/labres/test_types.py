"""The annotated modules type-check: mypy with django-stubs and djangorestframework-stubs, configured in pyproject.toml."""
import gc
import os
import sys
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]

# What mypy checks, relative to the repository. Each must also be in pyproject.toml's
# [[tool.mypy.overrides]] with disallow_untyped_defs (the second test says so).
CHECKED = [
    "labres/cli",
    "reservations/selectors.py",
    "reservations/parsing.py",
    "reservations/text.py",
    "reservations/recurrence.py",
    "monitoring/history.py",
    "monitoring/live.py",
    "monitoring/usage.py",
    "reservations/locking.py",
    "reservations/services/resources.py",
    "reservations/services/validation.py",
    "reservations/services/audit.py",
    "reservations/services/approval.py",
    "reservations/services/bookings.py",
    "reservations/services/series.py",
    "reservations/services/waitlist.py",
    "reservations/services/__init__.py",
    "reservations/services/fairuse.py",
    "reservations/services/capacity.py",
    "reservations/services/targets.py",
    "reservations/queries.py",
    "monitoring/queries.py",
]


def _module_of(path):
    """'labres/cli' -> 'labres.cli.*', 'reservations/text.py' -> 'reservations.text', 'reservations/services/__init__.py' -> 'reservations.services'."""
    if path.endswith(".py"):
        return path[: -len(".py")].removesuffix("/__init__").replace("/", ".")
    return path.replace("/", ".") + ".*"


def _mypy(arguments):
    # mypy runs in this process and raises the recursion limit and the garbage collector's
    # thresholds for good; the tests after this one run with what they had.
    recursion_limit, gc_thresholds = sys.getrecursionlimit(), gc.get_threshold()
    try:
        return api.run(arguments)
    finally:
        sys.setrecursionlimit(recursion_limit)
        gc.set_threshold(*gc_thresholds)


def test_annotated_modules_type_check(tmp_path):
    # The cache makes a second run take seconds; without LABRES_VAR_DIR it lasts only this test.
    cache = Path(os.environ.get("LABRES_VAR_DIR") or tmp_path) / "mypy-cache"
    stdout, stderr, status = _mypy(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache), *(str(ROOT / path) for path in CHECKED)]
    )
    assert status == 0, f"mypy reports errors:\n{stdout}{stderr}"


def test_every_checked_module_is_held_to_full_signatures():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    strict = {
        module
        for override in config["overrides"]
        if override.get("disallow_untyped_defs") and override.get("disallow_incomplete_defs")
        for module in override["module"]
    }
    assert [path for path in CHECKED if _module_of(path) not in strict] == []
