"""What every result file records: command, versions, hardware, git commit, date."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path


def run_record(argv: list[str]) -> dict:
    import torch

    from importlib import metadata

    versions = {}
    for name in ("longdoc", "torch", "transformers", "sentence_transformers", "faiss", "numpy"):
        try:  # the installed distribution's version, without importing it (sentence-transformers is heavy)
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            try:
                versions[name] = __import__(name).__version__
            except Exception:  # noqa: BLE001 - an absent package is recorded as None
                versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "command": " ".join(argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "python": platform.python_version(),
        "versions": versions,
    }
