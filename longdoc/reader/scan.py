"""Long context by scanning (after InfiniRetri, Ye et al. 2025): a document too long for the reader's
window is read in segments that fit it. In each segment the question's own prompt rows attend, exactly
and in every layer, over the segment's stored passage KV; the sentences they attend to most, over all
segments, are then read exactly with the question (or from their rows of the passage KV: answer.scan_read,
slices.py), and cited at those sentences.

A sentence is scored by the attention the question pays it beyond what a generic question ("What is this
text about?") pays it in the same segment. Raw attention is dominated by tokens every query attends to
(line breaks, sentence openings, a passage's first words); the contrast cancels them. Probe (the 0.5B,
128K tokens, 3 depths, a seed the bench does not use): the needle's sentence ranked 0-2 of 5,057 by the
contrast, 47-115 by raw attention. The generic question's attention depends only on the segment, so it
is computed once per segment and kept (Reader.scan_baselines): a document asked again costs one pass
per segment. The sentences' ranks by that contrast are fused with their BM25 ranks for the question
(answer.scan_lexical; bench/scan_recall.py: the excerpts held the answer for 17 of 18 reported questions
against 10 with attention alone).

Why segments: one softmax over 128K keys drowns a needle among distractors (session-10 probe: the needle's
16-key block ranked 400-8,000 of 8,200 by the question's summed attention), while over a few thousand
keys the reader singles it out, as full and block attention do at 4K. Each segment costs one pass of the
question's ~30 tokens over keys already in the KV store, so a 128K document is 32 short passes.

The sparse backends use the same picks (answer.sparse_pin = scan): context_tokens gives the picked
sentences' tokens in the context memory's order, and the memory pins the blocks that hold them."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch

from ..attention import AttentionMass, record_attention_mass
from ..attention.block import stitch_cache, with_cache
from ..indexing.chunking import sentence_spans
from ..retrieval.bm25 import bm25_scores
from ..retrieval.fusion import reciprocal_rank_fusion
from ..retrieval.hit import Hit
from .prompt import passage_token_chars

BASELINE_QUESTION = "What is this text about?"
PHRASE = 3  # tokens a sentence's score sums over: its best phrase, so long sentences gain nothing by length


@dataclass(frozen=True)
class Sentence:
    score: float  # the question's attention to the sentence's best phrase beyond the generic question's
    hit: int  # index into the scanned hits
    start: int  # chars in the hit's text
    end: int
    tokens: int
    first: int = 0  # its first token in the hit's prompt block


def segments(lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive runs of passage indices whose lengths sum to at most `budget` (at least one each)."""
    runs: list[list[int]] = [[]]
    size = 0
    for i, n in enumerate(lengths):
        if runs[-1] and size + n > budget:
            runs.append([])
            size = 0
        runs[-1].append(i)
        size += n
    return [r for r in runs if r]


@torch.inference_mode()
def question_attention(reader, prefix, blocks, suffix: list[int]) -> torch.Tensor:
    """The attention the question's rows pay to each position of [prefix | blocks], summed over heads and
    layers and averaged over the rows, with the blocks stitched contiguously after the prefix."""
    model = reader.model.model
    cache = stitch_cache(model, [prefix] + blocks, reader.model.dtype)
    start = prefix.length + sum(b.length for b in blocks)
    recorder = AttentionMass(query_rows=len(suffix))
    ids = torch.tensor([suffix], device=reader.model.device)
    positions = torch.arange(start, start + len(suffix), device=reader.model.device).unsqueeze(0)
    with record_attention_mass(recorder):
        model(input_ids=ids, **with_cache(model, cache), position_ids=positions, use_cache=True, logits_to_keep=1)
    return recorder.mass[:start] / len(suffix)


def sentence_scores(tokenizer, hit: Hit, index: int, mass: torch.Tensor) -> list[Sentence]:
    """Each sentence of the hit, scored by its best PHRASE-token run of `mass` (per token of the hit's
    prompt block). Without a fast tokenizer (no char offsets) the passage is one sentence."""
    chars = passage_token_chars(tokenizer, hit)
    phrase = torch.nn.functional.avg_pool1d(mass.view(1, 1, -1).float(), min(PHRASE, len(mass)), 1).view(-1) * PHRASE
    if chars is None:
        return [Sentence(float(phrase.max()), index, 0, len(hit.text), len(mass))]
    out = []
    token = 0
    for start, end in sentence_spans(hit.text, 0, len(hit.text)):
        while token < len(chars) and chars[token][1] <= start:
            token += 1
        last = token
        while last < len(chars) and chars[last][0] < end:
            last += 1
        if last > token:  # the phrase windows that start inside it (the last sentence's: the block's last one)
            first = min(token, len(phrase) - 1)
            score = float(phrase[first:max(first + 1, min(last, len(phrase)))].max())
            out.append(Sentence(score, index, start, end, last - token, token))
    return out


@dataclass(frozen=True)
class Span:
    """Neighbouring picked sentences of one hit joined: chars [start, end) of its text, tokens
    [first, last) of its prompt block, and its best sentence's score."""
    hit: int
    start: int
    end: int
    first: int
    last: int
    score: float


def joined_spans(hits: list[Hit], picked: list[Sentence]) -> list[Span]:
    """The picked sentences in reading order, neighbouring sentences of a passage (only space between
    them) joined into one span."""
    out: list[Span] = []
    for s in sorted(picked, key=lambda s: (s.hit, s.start)):
        last = out[-1] if out and out[-1].hit == s.hit else None
        if last is not None and not hits[s.hit].text[last.end:s.start].strip():
            out[-1] = Span(s.hit, last.start, s.end, min(last.first, s.first), max(last.last, s.first + s.tokens),
                           max(last.score, s.score))
        else:
            out.append(Span(s.hit, s.start, s.end, s.first, s.first + s.tokens, s.score))
    return out


def excerpt_hit(hit: Hit, span: Span) -> Hit:
    """The span as a hit with its exact char span in the document."""
    return replace(hit, char_start=hit.char_start + span.start, char_end=hit.char_start + span.end,
                   text=hit.text[span.start:span.end], focus=None)


def excerpts(hits: list[Hit], picked: list[Sentence]) -> list[Hit]:
    """The picked sentences as hits in reading order, neighbouring sentences of a passage joined into one
    excerpt, each with its exact char span in the document."""
    return [excerpt_hit(hits[span.hit], span) for span in joined_spans(hits, picked)]


def pick(scored: list[Sentence], keep_tokens: int, context: int) -> list[Sentence]:
    """The best sentences (`scored`: in reading order), each with `context` sentences either side in its
    passage, until keep_tokens: a sentence alone often lacks what it is about (a reference manual's
    "Return the number of ones..." follows the line that names the method)."""
    index = {id(s): n for n, s in enumerate(scored)}
    picked: dict[int, Sentence] = {}
    size = 0
    for best in sorted(scored, key=lambda s: -s.score):
        n = index[id(best)]
        group = [scored[m] for m in range(max(0, n - context), min(len(scored), n + context + 1))
                 if scored[m].hit == best.hit and m not in picked]
        extra = sum(s.tokens for s in group)
        if not group or (picked and size + extra > keep_tokens):
            continue
        picked.update((index[id(s)], s) for s in group)
        size += extra
    return list(picked.values())


def attention_sentences(reader, prompt, hits: list[Hit], segment_tokens: int) -> list[Sentence]:
    """Every sentence of `hits`, in prompt order, scored by the attention the question of `prompt` (built
    from the hits: reader.prompt) pays it beyond the generic question's, segment by segment."""
    generic = reader.prompt(BASELINE_QUESTION, [], in_order=True).suffix
    prefix = reader.encoder.prefix(prompt)
    scored: list[Sentence] = []
    for run in segments([len(b) for b in prompt.blocks], segment_tokens):
        blocks = reader.encoder.blocks(prompt, run)
        baseline = reader.scan_baselines.get_or_compute(tuple(prompt.block_keys[i] for i in run),
                                                        lambda: question_attention(reader, prefix, blocks, generic))
        mass = question_attention(reader, prefix, blocks, prompt.suffix) - baseline
        position = prefix.length
        for i, block in zip(run, blocks):
            h = prompt.order[i]
            scored += sentence_scores(reader.model.tokenizer, hits[h], h, mass[position:position + block.length])
            position += block.length
    return scored


def with_lexical(scored: list[Sentence], hits: list[Hit], question: str, weight: float) -> list[Sentence]:
    """The sentences rescored by reciprocal-rank fusion of their attention rank and, with `weight`, their
    BM25 rank for the question among the document's sentences (those that share a term with it). The
    reader's attention misses rare names, such as the signature line "connect(database, timeout=5.0, ..."
    asked about as "the default timeout of sqlite3.connect", which words match."""
    if weight <= 0 or not scored:
        return scored
    lexical = bm25_scores(question, [hits[s.hit].text[s.start:s.end] for s in scored])
    fused, _ = reciprocal_rank_fusion(
        {"attention": sorted(((n, s.score) for n, s in enumerate(scored)), key=lambda x: -x[1]),
         "words": sorted(((n, x) for n, x in enumerate(lexical) if x > 0), key=lambda x: -x[1])},
        {"attention": 1.0, "words": weight})
    score = dict(fused)
    return [replace(s, score=score[n]) for n, s in enumerate(scored)]


def scanned(reader, prompt, hits: list[Hit], question: str, segment_tokens: int, keep_tokens: int, context: int = 1,
            lexical: float = 0.0) -> list[Sentence]:
    """The sentences of `hits` that the question attends to most (attention_sentences; fused with their
    BM25 rank at weight `lexical`), with `context` sentences either side, up to keep_tokens reader tokens."""
    scored = with_lexical(attention_sentences(reader, prompt, hits, segment_tokens), hits, question, lexical)
    return pick(scored, keep_tokens, context)


def scan(reader, prompt, hits: list[Hit], question: str, segment_tokens: int, keep_tokens: int, context: int = 1,
         lexical: float = 0.0) -> list[Hit]:
    """The scanned sentences as excerpt hits in the hits' order."""
    return excerpts(hits, scanned(reader, prompt, hits, question, segment_tokens, keep_tokens, context, lexical))


def context_tokens(prompt, picked: list[Sentence]) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, ranks): the picked sentences' tokens as positions in the prompt's passages laid end to end
    (the context memory's token order), best sentence first, and each token's sentence rank (0: best)."""
    block_of = {h: i for i, h in enumerate(prompt.order)}
    starts = list(itertools.accumulate((len(b) for b in prompt.blocks), initial=0))
    best = sorted(picked, key=lambda s: -s.score)
    ids = [starts[block_of[s.hit]] + s.first + j for s in best for j in range(s.tokens)]
    ranks = [r for r, s in enumerate(best) for _ in range(s.tokens)]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(ranks, dtype=torch.long)
