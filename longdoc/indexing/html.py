"""HTML to plain text with block structure and heading offsets, using the standard library parser."""
from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "li", "ul", "ol",
          "table", "tr", "pre", "blockquote", "br", "hr", "dl", "dt", "dd", "figure", "figcaption",
          "h1", "h2", "h3", "h4", "h5", "h6", "title", "body"}
_SKIP = {"script", "style", "noscript", "template", "head", "svg"}
_HEADING = re.compile(r"^h([1-6])$")


class _TextBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.skip_depth = 0
        self.in_pre = 0
        self.headings: list[tuple[int, int, str]] = []
        self.open_heading: tuple[int, int] | None = None  # (offset, level)
        self.in_title = False
        self.title = ""

    def _emit(self, s: str):
        self.parts.append(s)
        self.length += len(s)

    def _newline(self, n: int = 1):
        tail = "".join(self.parts[-2:])
        have = len(tail) - len(tail.rstrip("\n")) if tail.strip("\n") or self.parts else n
        if self.length and have < n:
            self._emit("\n" * (n - have))

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag == "pre":
            self.in_pre += 1
        if tag in _BLOCK:
            self._newline(2 if tag in {"p", "pre", "blockquote", "table", "ul", "ol"} or _HEADING.match(tag) else 1)
        m = _HEADING.match(tag)
        if m and not self.skip_depth:
            self.open_heading = (self.length, int(m.group(1)))

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "pre":
            self.in_pre = max(0, self.in_pre - 1)
        m = _HEADING.match(tag)
        if m and self.open_heading:
            start, level = self.open_heading
            heading_text = self._since(start)
            if heading_text:
                self.headings.append((start, level, heading_text))
            self.open_heading = None
        if tag in _BLOCK:
            self._newline(2 if tag in {"p", "pre", "blockquote", "table"} or m else 1)

    def _since(self, start: int) -> str:
        out, pos = [], self.length
        for part in reversed(self.parts):
            if pos <= start:
                break
            out.append(part[max(0, start - (pos - len(part))):])
            pos -= len(part)
        return " ".join("".join(reversed(out)).split())

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.skip_depth:
            return
        if not self.in_pre:
            data = re.sub(r"\s+", " ", data)
            if self.length == 0 or "".join(self.parts[-1:]).endswith(("\n", " ")):
                data = data.lstrip(" ")
        if data:
            self._emit(data)


def html_to_text(html: str) -> tuple[str, list[tuple[int, int, str]], str]:
    """(plain text, headings as (offset, level, title), <title>)."""
    builder = _TextBuilder()
    builder.feed(html)
    builder.close()
    return "".join(builder.parts), builder.headings, " ".join(builder.title.split())
