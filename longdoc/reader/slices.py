"""The scan's excerpts read from their passages' stored KV instead of encoded again.

Scan has the whole document's passage KV in the store already (it attends over it segment by segment).
Each excerpt's rows of its passage's KV (the passage header's tokens, the excerpt's sentences' tokens
and the passage's closing blank line) are taken as one block, re-rotated to lie contiguously, and the
excerpts are stitched like Block-Attention passages: the question is the only text prefilled. Encoding
the excerpts again (answer.scan_read = exact, the default) costs a prefill of ~1,000 tokens, about 20 s
of a CPU answer's first-token time with the 1.5B reader; reading them from the KV takes about 1 s.

Each row keeps what its token saw when its passage was encoded (the whole passage, not only the
excerpt) and nothing of the other excerpts. That costs answers: bench/scan_read.py, 25 of 30 right
against 29 read exactly, and 25 with the best excerpt re-encoded over the others."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attention.block import KVBlock
from ..attention.rope import rerotate_keys, rotary_cos_sin
from ..retrieval.hit import Hit
from .prompt import Prompt, passage_token_chars
from .scan import Sentence, excerpt_hit, joined_spans


@dataclass
class ExcerptRead:
    hits: list[Hit]  # the excerpts, in reading order (as scan.excerpts gives them)
    prompt: Prompt  # their tokens as prompt blocks, one per excerpt
    blocks: list[KVBlock]  # their KV, one block per excerpt, each contiguous from its start
    best: list[int]  # the excerpts by their best sentence's score, best first

    def stale(self, n: int) -> tuple[list[int], list[int]]:
        """(the cached tokens, the cache positions of the n best excerpts): what to re-encode over the
        stitched excerpts in the question's pass (attention/recompute.py), so the excerpt that matters
        most sees the others."""
        spans = self.prompt.spans()  # one block per excerpt, in order
        positions = sorted(p for i in self.best[:n] for p in range(*spans[i]))
        return self.prompt.prefix + [t for b in self.prompt.blocks for t in b], positions


def block_rows(tokenizer, hit: Hit, block: list[int], first: int, last: int) -> list[int]:
    """The rows of a passage's prompt block that an excerpt of tokens [first, last) keeps: the header's
    tokens (which name the source), the excerpt's, and the tokens after the passage's text (its closing
    blank line). Without a fast tokenizer the header and closing rows are unknown: the excerpt's alone."""
    chars = passage_token_chars(tokenizer, hit)
    if chars is None:
        return list(range(first, last))
    text_end = len(hit.text.rstrip())
    header = [i for i, (_, end) in enumerate(chars) if end <= 0]
    closing = [i for i, (start, _) in enumerate(chars) if start >= text_end]
    return sorted(set(header) | set(range(first, min(last, len(block)))) | set(closing))


def take_rows(model, block: KVBlock, rows: list[int]) -> KVBlock:
    """The block's rows `rows` (ascending), keys re-rotated from their positions in the block to
    consecutive positions from the block's start."""
    index = torch.tensor(rows, dtype=torch.long, device=block.keys.device)
    keys = block.keys.index_select(-2, index)
    values = block.values.index_select(-2, index)
    src = rotary_cos_sin(model, index + block.start)
    dst = rotary_cos_sin(model, torch.arange(block.start, block.start + len(rows), device=index.device))
    return KVBlock(rerotate_keys(keys, src, dst), values, block.start)


def excerpt_read(reader, prompt: Prompt, hits: list[Hit], picked: list[Sentence]) -> ExcerptRead:
    """The excerpts of `picked` (sentences of `hits`, prompt's passages read in order) with their tokens
    and KV taken from their passages' blocks."""
    spans = joined_spans(hits, picked)
    block_of = {h: i for i, h in enumerate(prompt.order)}
    need = sorted({block_of[s.hit] for s in spans})
    stored = dict(zip(need, reader.encoder.blocks(prompt, need)))
    tokenizer = reader.model.tokenizer
    ids, blocks = [], []
    for span in spans:
        i = block_of[span.hit]
        rows = block_rows(tokenizer, hits[span.hit], prompt.blocks[i], span.first, span.last)
        ids.append([prompt.blocks[i][r] for r in rows])
        blocks.append(take_rows(reader.model.model, stored[i], rows))
    excerpt_prompt = Prompt(prompt.prefix_text, prompt.prefix, ids, [""] * len(ids), list(range(len(ids))),
                            prompt.suffix, [None] * len(ids))
    best = sorted(range(len(spans)), key=lambda i: -spans[i].score)
    return ExcerptRead([excerpt_hit(hits[s.hit], s) for s in spans], excerpt_prompt, blocks, best)
