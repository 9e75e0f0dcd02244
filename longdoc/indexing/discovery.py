"""Which files an `index PATH...` run covers: supported files under directories, named files as given."""
from __future__ import annotations

import os
from pathlib import Path

from .loaders import format_of


def absolute(path: str | Path) -> str:
    # abspath, not resolve: a symlinked file is indexed under the name the user gave it.
    return os.path.abspath(os.path.expanduser(str(path)))


def discover(roots: list[str | Path]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files to index, [(path, reason)] for named paths that cannot be used). Sorted, deduplicated.

    In directories, hidden entries and unsupported extensions are passed over silently; a file
    named explicitly is always tried, so the user hears why it was skipped.
    """
    files: set[str] = set()
    problems: list[tuple[str, str]] = []
    for root in roots:
        root = absolute(root)
        if os.path.isdir(root):
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    if not name.startswith(".") and format_of(Path(name)):
                        files.add(os.path.join(dirpath, name))
        elif os.path.lexists(root):
            files.add(root)
        else:
            problems.append((root, "no such file or directory"))
    return sorted(files), problems


def under_roots(path: str, roots: list[str]) -> bool:
    for root in roots:
        root = absolute(root)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False
