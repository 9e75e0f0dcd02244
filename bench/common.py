"""Shared bench helpers: run metadata (command, versions, hardware, commit) and result files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from longdoc.evaluation.record import run_record

RESULTS = Path(__file__).parent / "results"


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": run_record([Path(sys.executable).name, *sys.argv]), **data}, indent=2) + "\n")
    return path
