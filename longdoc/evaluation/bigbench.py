"""Tasks from the bigbench sdist (358 MB), read with tarfile and never installed."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from filelock import FileLock

from ..errors import LongdocError
from ..models.cache import cache_dir
from ..storage.files import atomic_write

SDIST = "bigbench==1.0.0"
# Current pip refuses to download bigbench (its metadata names a direct-URL dependency); pip 23.2
# downloads it. It runs from its own target directory, leaving the environment's pip alone.
_OLD_PIP = "pip==23.2.1"


def bigbench_sdist() -> Path:
    dest = cache_dir("sdists")
    with FileLock(str(dest / "bigbench.lock")):
        found = sorted(dest.glob("bigbench-1.0.0.tar.gz"))
        if found:
            return found[0]
        pip_dir = cache_dir("tools", "pip-23.2.1")
        if not (pip_dir / "pip").exists():
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(pip_dir), _OLD_PIP], check=True)
        print(f"fetching the {SDIST} sdist (358 MB, once) ...", file=sys.stderr)
        env = dict(os.environ, PYTHONPATH=str(pip_dir), PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), SDIST],
                              env=env, capture_output=True, text=True)
        found = sorted(dest.glob("bigbench-1.0.0.tar.gz"))
        if not found:
            raise LongdocError(f"could not download {SDIST}: {proc.stderr.strip()[-400:]}")
        return found[0]


def bigbench_task(task: str) -> Path:
    """Path of benchmark_tasks/<task>/task.json, extracted from the sdist once."""
    out = cache_dir("data", "bigbench", *task.split("/")) / "task.json"
    if out.exists():
        return out
    member = f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/task.json"
    with tarfile.open(bigbench_sdist()) as tar:
        try:
            src = tar.extractfile(member)
        except KeyError:
            raise LongdocError(f"bigbench has no task {task!r}") from None
        atomic_write(out, src.read())
    return out
