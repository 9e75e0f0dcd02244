"""Bytes to text: UTF-8 first, then a detected legacy encoding; binary and garbage are refused."""
from __future__ import annotations

import re

from ..errors import SkippedFile

# Well-formed multi-byte UTF-8 sequences. Legacy 8-bit text rarely contains them; a file that does
# yet fails to decode is UTF-8 with corrupt bytes, and re-reading it as cp1252 would give mojibake.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")

_BOMS = [(b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")]


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return control > len(head) * 0.05


def decode_text(path, data: bytes) -> tuple[str, str]:
    """(text, encoding name). Raises SkippedFile naming the cause."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError:
                raise SkippedFile(path, f"starts with a {enc} byte-order mark but does not decode as {enc}") from None
    if looks_binary(data):
        raise SkippedFile(path, "binary file (NUL or control bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        utf8_error = e
    where = f"{utf8_error.reason} at byte {utf8_error.start}"
    bad = data.decode("utf-8", errors="replace").count("\ufffd")
    if bad <= len(data) // 100 and len(_UTF8_MULTIBYTE.findall(data, 0, 1 << 20)) >= 2:
        raise SkippedFile(path, f"invalid UTF-8 ({where}) in a file that is otherwise UTF-8: corrupt bytes")
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    # A real legacy-encoded text decodes with little "chaos"; random bytes do not.
    if best is None or best.chaos > 0.2 or best.encoding.startswith("utf"):
        raise SkippedFile(path, f"not valid UTF-8 ({where}) and no other text encoding fits")
    return str(best), best.encoding
