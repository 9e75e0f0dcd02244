"""Scanning a long document (reader/scan.py), the parts that need no reader: segments, where a passage's
tokens lie in its text, sentence scores from per-token attention, excerpts with exact char spans, and the context tokens
that pin the picked sentences in a sparse memory."""
from dataclasses import replace

import torch

from longdoc.reader.prompt import passage_token_chars
from longdoc.reader.scan import Sentence, excerpts, segments, sentence_scores
from longdoc.retrieval.hit import Hit

DOC = ("Preface.\n\n  The tower took four summers to finish. Winter seas were too rough. "
       "The lamp was lit in 1931. Keepers left in 1987.")


def hit(start: int, end: int) -> Hit:
    return Hit(7, 1, "coast.md", "Coast", ("Lighthouses", "Building"), start, end, None, None, DOC[start:end], 0.0)


def test_segments_are_consecutive_runs_within_the_budget():
    assert segments([300, 300, 500, 900, 100], 700) == [[0, 1], [2], [3], [4]]
    assert segments([], 10) == []


def test_token_chars_point_into_the_hits_text(tokenizer):
    h = hit(10, len(DOC))  # starts with blank space, which the prompt strips
    chars = passage_token_chars(tokenizer, h)
    inside = [(s, e) for s, e in chars if 0 <= s < e <= len(h.text)]
    assert inside and inside[0] == (h.text.index("The"), h.text.index("The") + 3)
    words = [h.text[s:e].lower() for s, e in inside]
    assert "summers" in words and "1931" in words
    assert len(inside) < len(chars)  # the header and the trailing blank line lie outside the text


def test_the_sentence_holding_the_attended_tokens_scores_highest(tokenizer):
    h = hit(10, len(DOC))
    chars = passage_token_chars(tokenizer, h)
    mass = torch.full((len(chars),), 0.01, dtype=torch.float64)
    lamp = h.text.index("1931")
    mass[[i for i, (s, e) in enumerate(chars) if s <= lamp < e]] = 1.0
    scored = sentence_scores(tokenizer, h, 3, mass)
    best = max(scored, key=lambda s: s.score)
    assert h.text[best.start:best.end] == "The lamp was lit in 1931."
    assert [h.text[s.start:s.end] for s in scored][0] == "The tower took four summers to finish."
    assert all(s.hit == 3 and s.tokens > 0 for s in scored)


def test_a_short_last_sentence_is_scored_too(tokenizer):
    """Its tokens lie past the last full phrase window: it takes that window's score."""
    h = hit(0, len(DOC) - len(" Keepers left in 1987."))
    h = Hit(**{**h.__dict__, "text": h.text + " Go.", "char_end": h.char_end + 4})
    chars = passage_token_chars(tokenizer, h)
    scored = sentence_scores(tokenizer, h, 0, torch.ones(len(chars), dtype=torch.float64))
    assert h.text[scored[-1].start:scored[-1].end] == "Go." and scored[-1].score > 0


def test_excerpts_join_neighbouring_sentences_and_keep_exact_spans():
    h = hit(10, len(DOC))
    spans = [(h.text.index(t), h.text.index(t) + len(t)) for t in
             ("The tower took four summers to finish.", "Winter seas were too rough.", "Keepers left in 1987.")]
    picked = [Sentence(0.5, 0, *spans[2], 5), Sentence(0.9, 0, *spans[0], 8), Sentence(0.7, 0, *spans[1], 6)]
    out = excerpts([h], picked)
    assert [e.text for e in out] == ["The tower took four summers to finish. Winter seas were too rough.",
                                     "Keepers left in 1987."]
    for e in out:
        assert DOC[e.char_start:e.char_end] == e.text and e.chunk_id == 7 and e.section == h.section


def test_context_tokens_are_the_picked_sentences_in_the_memorys_token_order(tokenizer):
    """The memory lays the prompt's passages end to end in prompt order (here the best hit last): each
    picked sentence's tokens, best sentence first, point at its words there."""
    from longdoc.reader.prompt import build_prompt
    from longdoc.reader.scan import context_tokens

    hits = [hit(10, len(DOC)), hit(0, 8)]
    prompt = build_prompt(tokenizer, "Answer.", "When was the lamp lit?", hits)
    assert prompt.order == [1, 0]
    scored = [s for i, h in enumerate(hits)
              for s in sentence_scores(tokenizer, h, i, torch.zeros(len(passage_token_chars(tokenizer, h))))]
    lamp = next(s for s in scored if hits[0].text[s.start:s.end].startswith("The lamp"))
    tower = next(s for s in scored if hits[0].text[s.start:s.end].startswith("The tower"))
    ids, ranks = context_tokens(prompt, [replace(tower, score=0.2), replace(lamp, score=0.9)])
    ids = ids.tolist()
    assert ranks.tolist() == [0] * lamp.tokens + [1] * tower.tokens
    memory = [t for block in prompt.blocks for t in block]
    assert len(ids) == lamp.tokens + tower.tokens and min(ids) >= len(prompt.blocks[0])  # hit 0 is the second block
    words = tokenizer.decode([memory[i] for i in ids])
    assert words == "the lamp was lit in 1931. the tower took four summers to finish."


def test_the_best_excerpts_stale_rows_are_their_whole_blocks_in_the_cache():
    """reader/slices.py: re-encoding the n best excerpts means every cache position of their blocks (after
    the prefix), over the cached tokens laid out as the prompt lays them."""
    from longdoc.reader.prompt import Prompt
    from longdoc.reader.slices import ExcerptRead

    prompt = Prompt("sys", [1, 2, 3], [[10, 11], [20, 21, 22], [30]], ["", "", ""], [0, 1, 2], [99], [None] * 3)
    read = ExcerptRead([], prompt, [], best=[1, 2, 0])
    tokens, positions = read.stale(2)
    assert tokens == prompt.ids()[:-1]
    assert positions == [5, 6, 7, 8] and [tokens[p] for p in positions] == [20, 21, 22, 30]
    assert read.stale(0)[1] == [] and read.stale(5)[1] == list(range(3, 9))
