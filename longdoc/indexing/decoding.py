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
    single = single_byte_text(data)
    if single is not None:
        return single
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    # A real legacy-encoded text decodes with little "chaos"; random bytes do not.
    if best is None or best.chaos > 0.2 or best.encoding.startswith("utf"):
        raise SkippedFile(path, f"not valid UTF-8 ({where}) and no other text encoding fits")
    return str(best), best.encoding


# The legacy single-byte encodings of European text, most common first (a tie goes to the earlier one).
# latin-1 differs from cp1252 only where cp1252 has printable characters and latin-1 control codes.
SINGLE_BYTE = ["cp1252", "cp1250", "cp1251", "latin-1"]
# The letters beyond ASCII of each alphabet written in those encodings. A text decoded with the right
# encoding uses the letters of one language; decoded with a wrong one, it mixes alphabets (French è read
# as cp1250 becomes č, beside ŕ and ů that no language uses together) or puts symbols inside words.
ALPHABETS = {
    "french": "àâæçéèêëîïôœùûüÿ", "portuguese": "ãõáéíóúâêôàç", "spanish": "áéíóúñü", "german": "äöüß",
    "italian": "àèéìíîòóùú", "catalan": "àèéíïòóúüç", "dutch": "éëïöüèáó", "nordic": "åäöæøéóáíúýþð",
    "czech": "áčďéěíňóřšťúůýž", "slovak": "áäčďéíĺľňóôŕšťúýž", "polish": "ąćęłńóśźż", "hungarian": "áéíóöőúüű",
    "romanian": "ăâîșțşţ", "south slavic": "čćđšž", "cyrillic": "абвгдежзийклмнопрстуфхцчшщъыьэюяёђѓєѕіїјљњћќўџґ",
}
# Typographic apostrophes and dashes do sit inside words; any other non-letter beyond ASCII between two
# letters means a wrong encoding (Polish "także" read as cp1252 is "tak¿e").
_IN_WORD = set("\u2018\u2019\u201a\u201b\u2010\u2011\u2013\u2014\u00b7")
_SAMPLE = 1 << 20  # bytes judged: enough text, bounded time


def _symbols_in_words(text: str) -> int:
    return sum(1 for i in range(1, len(text) - 1)
               if ord(text[i]) > 127 and not text[i].isalpha() and not text[i].isspace() and text[i] not in _IN_WORD
               and text[i - 1].isalpha() and text[i + 1].isalpha())


def single_byte_text(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) for the single-byte encoding whose letters fit one alphabet best, or None when
    none fits most of the text's non-ASCII letters (then another detector decides)."""
    best = None
    for encoding in SINGLE_BYTE:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        sample = text[:_SAMPLE]
        letters = [c for c in sample.lower() if ord(c) > 127 and c.isalpha()]
        if not letters:
            score = 1.0 if encoding == "cp1252" else 0.0  # only punctuation and symbols beyond ASCII
        else:
            score = max(sum(c in alphabet for c in letters) for alphabet in ALPHABETS.values()) / len(letters)
        score -= _symbols_in_words(sample) / max(1, len(letters))
        if best is None or score > best[0]:
            best = (score, text, encoding)
    return (best[1], best[2]) if best is not None and best[0] >= 0.9 else None
