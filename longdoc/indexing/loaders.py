"""Load a file into a LoadedDocument: txt, md, rst, html and pdf, each with a reason when it cannot."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..errors import SkippedFile
from .decoding import decode_text
from .document import LoadedDocument, sections_from_headings

FORMATS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".rst": "rst",
           ".html": "html", ".htm": "html", ".pdf": "pdf"}


def format_of(path: Path) -> str | None:
    if path.name.lower().endswith(".rst.txt"):  # Sphinx's _sources copies
        return "rst"
    return FORMATS.get(path.suffix.lower())


def load_document(path: str | Path, data: bytes | None = None, max_bytes: int | None = None) -> LoadedDocument:
    """Read and parse one file. `data` may be passed when the caller already read the bytes."""
    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise SkippedFile(path, f"unsupported file type {path.suffix or '(no extension)'!r}; "
                                f"supported: {', '.join(sorted(set(FORMATS)))}")
    if data is None:
        data = read_bytes(path, max_bytes)
    if not data.strip():
        raise SkippedFile(path, "empty file")
    if fmt == "pdf":
        from .pdf import load_pdf

        doc = load_pdf(path, data)
    else:
        text, encoding = decode_text(path, data)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        doc = _PARSERS[fmt](path, text)
        doc.encoding = encoding
    if not doc.text.strip():
        raise SkippedFile(path, "no text in file")
    return doc


_NOT_REGULAR = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")]


def _check_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        what = next((what for test, what in _NOT_REGULAR if test(mode)), "of another kind")
        raise SkippedFile(path, f"not a regular file: {what}")


def read_bytes(path: Path, max_bytes: int | None) -> bytes:
    """The file's bytes, from regular files only (a FIFO would block, /dev/zero never end), and never
    more than max_bytes: the read stops there even when the size the file system reports is wrong."""
    try:
        _check_regular(path, os.stat(path).st_mode)
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever. Checked again after
        # opening (fstat), so a file swapped for a pipe or device in between is refused too.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SkippedFile(path, f"cannot read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        try:
            info = os.fstat(fd)
            _check_regular(path, info.st_mode)
            size = info.st_size
            over = max_bytes is not None and size > max_bytes
            data = b"" if over else f.read() if max_bytes is None else f.read(max_bytes + 1)
        except OSError as e:
            raise SkippedFile(path, f"cannot read: {e.strerror or e}") from None
    if max_bytes is not None and max(size, len(data)) > max_bytes:
        raise SkippedFile(path, f"file is {max(size, len(data)) / 2**20:.1f} MiB, over the "
                                f"{max_bytes / 2**20:.0f} MiB limit (max_file_mb)")
    return data


def _load_txt(path: Path, text: str) -> LoadedDocument:
    return LoadedDocument(str(path), "txt", text, path.stem, sections_from_headings(text, []))


_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")


def _load_md(path: Path, text: str) -> LoadedDocument:
    headings: list[tuple[int, int, str]] = []
    offset, in_fence, prev = 0, False, None  # prev = (offset, line) of the previous plain text line
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
        elif not in_fence:
            atx = _ATX.match(stripped)
            setext = _SETEXT.match(stripped)
            if atx:
                headings.append((offset, len(atx.group(1)), atx.group(2)))
            elif setext and prev is not None and prev[1].strip():
                headings.append((prev[0], 1 if setext.group(1)[0] == "=" else 2, prev[1].strip()))
        prev = (offset, stripped) if not in_fence and stripped.strip() and not _ATX.match(stripped) else None
        offset += len(line)
    title = headings[0][2].strip() if headings else path.stem
    return LoadedDocument(str(path), "md", text, title, sections_from_headings(text, headings))


_RST_ADORN = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


def _load_rst(path: Path, text: str) -> LoadedDocument:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first use = heading levels
    headings: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines) - 1:
        title, under = lines[i].rstrip("\n"), lines[i + 1].rstrip("\n")
        over = lines[i - 1].rstrip("\n") if i > 0 else ""
        m = _RST_ADORN.match(under)
        if title.strip() and not _RST_ADORN.match(title) and m and len(under.rstrip()) >= len(title.rstrip()):
            has_over = bool(_RST_ADORN.match(over)) and over.strip()[0] == m.group(1)
            style = (m.group(1), has_over)
            if style not in styles:
                styles.append(style)
            start = offsets[i - 1] if has_over else offsets[i]
            headings.append((start, styles.index(style) + 1, title.strip()))
            i += 2
            continue
        i += 1
    title = headings[0][2] if headings else path.stem
    return LoadedDocument(str(path), "rst", text, title, sections_from_headings(text, headings))


def _load_html(path: Path, text: str) -> LoadedDocument:
    from .html import html_to_text

    plain, headings, title = html_to_text(text)
    return LoadedDocument(str(path), "html", plain, title or path.stem, sections_from_headings(plain, headings))


_PARSERS = {"txt": _load_txt, "md": _load_md, "rst": _load_rst, "html": _load_html}
