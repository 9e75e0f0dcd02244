"""The reader's prompt, in three token runs: the prefix (system turn and the opening of the user turn),
one block per retrieved passage, and the suffix (the question and the opening of the assistant turn).

The same token ids feed both backends: `full` prefills them in one pass, `block` reuses each block's
cached KV. A block's text never depends on its rank, so its KV is reusable across questions. Passages run
in reverse rank order, the best one next to the question, where a small reader attends most."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# The assistant turn opens with this, so a small reader states the answer instead of restating the question.
ANSWER_PRIMER = "Answer:"
_SLOT = "\u27e6longdoc-passages\u27e7"


@dataclass
class Prompt:
    prefix_text: str
    prefix: list[int]
    blocks: list[list[int]]  # token ids per passage, in prompt order
    block_keys: list[str]  # sha256 of (prefix, passage text): the KV store key of each block
    order: list[int]  # order[i]: index into the hits of blocks[i]
    suffix: list[int]
    # focus[i]: the token span [start, end) inside blocks[i] of the chunk search matched (Hit.focus), or None
    focus: list[tuple[int, int] | None] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.prefix) + sum(map(len, self.blocks)) + len(self.suffix)

    def ids(self) -> list[int]:
        return self.prefix + [t for b in self.blocks for t in b] + self.suffix

    def spans(self) -> list[tuple[int, int]]:
        """Token span [start, end) of each hit's passage in the full sequence, indexed like the hits."""
        spans: list[tuple[int, int]] = [(0, 0)] * len(self.blocks)
        pos = len(self.prefix)
        for hit_index, block in zip(self.order, self.blocks):
            spans[hit_index] = (pos, pos + len(block))
            pos += len(block)
        return spans


def _header(hit) -> str:
    where = " > ".join(hit.section) if hit.section else ""
    source = f"{hit.title} ({where})" if where and where != hit.title else hit.title
    return f"Passage from {source}:\n"


def _passage(hit) -> tuple[str, tuple[int, int] | None]:
    """The passage's text in the prompt, and where the hit's focus chunk lies in it (chars), if it has one."""
    header = _header(hit)
    text, focus = f"{header}{hit.text.strip()}\n\n", None
    if hit.focus is not None:  # a focus reaching past the window's text reaches the passage's ends
        shift = len(header) - hit.char_start - (len(hit.text) - len(hit.text.lstrip()))
        a, b = (min(max(c + shift, 0), len(text)) for c in hit.focus)
        focus = (a, b) if a < b else None
    return text, focus


def passage_token_chars(tokenizer, hit) -> list[tuple[int, int]] | None:
    """Where each token of the hit's prompt block lies in hit.text, as (start, end) chars; the header's
    tokens fall before 0 and the trailing blank line's past the end. None without a fast tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    text, _ = _passage(hit)
    head, lead = len(_header(hit)), len(hit.text) - len(hit.text.lstrip())
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [(s - head, e - head) if e <= head else (max(s, head) - head + lead, e - head + lead) for s, e in offsets]


def _token_span(offsets: list[tuple[int, int]], chars: tuple[int, int]) -> tuple[int, int] | None:
    """The tokens [start, end) whose characters overlap chars [a, b)."""
    inside = [i for i, (s, e) in enumerate(offsets) if s < chars[1] and e > chars[0]]
    return (inside[0], inside[-1] + 1) if inside else None


def block_key(prefix_text: str, text: str) -> str:
    return hashlib.sha256(f"{prefix_text}\x00{text}".encode()).hexdigest()


def _split_template(tokenizer, instruction: str, question: str) -> tuple[str, str]:
    """(text before the passages, text after them) from the model's chat template, or a plain layout."""
    user = f"{_SLOT}Question: {question.strip()}"
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": "system", "content": instruction}, {"role": "user", "content": user}],
            tokenize=False, add_generation_prompt=True)
    else:
        rendered = f"{instruction}\n\n{user}\nAnswer:"
    before, after = rendered.split(_SLOT)
    return before, after + ANSWER_PRIMER


def build_prompt(tokenizer, instruction: str, question: str, hits, in_order: bool = False) -> Prompt:
    """in_order keeps the hits' order (a document read whole) instead of putting the best hit last."""
    prefix_text, suffix_text = _split_template(tokenizer, instruction, question)
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    order = list(range(len(hits))) if in_order else list(range(len(hits)))[::-1]
    passages = [_passage(hits[i]) for i in order]
    blocks, focus = [], []
    for text, chars in passages:
        chars = chars if getattr(tokenizer, "is_fast", False) else None  # offsets need a fast tokenizer
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=chars is not None)
        blocks.append(enc["input_ids"])
        focus.append(_token_span(enc["offset_mapping"], chars) if chars is not None else None)
    return Prompt(prefix_text, encode(prefix_text), blocks, [block_key(prefix_text, t) for t, _ in passages], order,
                  encode(suffix_text), focus)
