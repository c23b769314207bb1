"""Fixtures of the loader tests: the real datasets beside the project."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# tests/data/real: small real exports with their licences, in the repository
REAL = REPO / "tests" / "data" / "real"


def realdata_path() -> Path | None:
    """``../shared/realdata`` beside the checkout (CI), else $QA_REALDATA, else the machine's
    /work/shared/realdata; None when none exists."""
    for p in (os.environ.get("QA_REALDATA"), REPO.parent / "shared" / "realdata",
              "/work/shared/realdata"):
        if p and (Path(p) / "TRUTH.json").is_file():
            return Path(p)
    return None


@pytest.fixture(scope="session")
def realdata() -> Path:
    p = realdata_path()
    if p is None:
        pytest.skip("../shared/realdata (BCCD, raccoon) is not beside this checkout; set "
                    "QA_REALDATA to its folder")
    return p


@pytest.fixture(scope="session")
def truth(realdata) -> dict:
    return json.loads((realdata / "TRUTH.json").read_text())
