"""The reader's raw output made into one clean answer: lead-ins ("The answer is:"), the reader's own
passage markers ("[1]", which longdoc adds itself from attention) and markup lines (code fences,
reStructuredText directives copied from a manual) are dropped. If nothing is left, the text is kept."""
from __future__ import annotations

import re

_LEAD_IN = re.compile(r"^\s*(?:(?:so,?\s+)?(?:the\s+)?(?:short\s+|final\s+)?answer(?:\s+is)?\s*[:\-]?\s*|according to the passages?,?\s*)",
                      re.IGNORECASE)
_MARKERS = re.compile(r"\s*\[(?:\d+|passage \d+)\](?:\s*\[\d+\])*", re.IGNORECASE)
_MARKUP_LINE = re.compile(r"^\s*(?:\.\.\s+[\w-]+::.*|```\w*|~~~\w*)\s*$")


def is_markup(line: str) -> bool:
    """A blank line, a code fence or a reStructuredText directive: no part of an answer."""
    return not line.strip() or bool(_MARKUP_LINE.match(line))


def clean_answer(text: str, keep_if_empty: bool = True) -> str:
    lines = [line for line in text.strip().split("\n") if not is_markup(line)]
    if len(lines) > 1 and lines[0].rstrip().endswith(":"):  # "The names are:" introducing the answer below
        lines = lines[1:]
    cleaned = " ".join(line.strip() for line in lines)
    cleaned = _LEAD_IN.sub("", cleaned, count=1)
    cleaned = _MARKERS.sub("", cleaned).strip()
    return cleaned or (text.strip() if keep_if_empty else "")


def stable_prefix(text: str) -> str:
    """What can be streamed of a partial answer: up to its last space (the last word may still grow, or
    turn out to be a marker that cleaning drops)."""
    cleaned = clean_answer(text, keep_if_empty=False)
    cut = cleaned.rfind(" ")
    return cleaned[:cut] if cut > 0 else ""
