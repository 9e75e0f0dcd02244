"""Greedy decoding over a prepared KV cache, streaming text and recording the answer's attention mass."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..attention import AttentionMass, record_attention_mass
from ..attention.block import with_cache
from ..attention.kv_cache import growing_cache
from ..attention.recompute import reencode
from .cleanup import clean_answer, is_markup, stable_prefix
from .model import ReaderModel


@dataclass
class Generation:
    text: str
    tokens: list[int]
    mass: torch.Tensor  # attention per context position, summed over layers, heads and answer tokens
    ttft_s: float  # from the start of the request to the first token
    decode_s: float  # the rest of the tokens
    decode_steps: int  # forward passes after the prefill


def _line_ended(text: str) -> bool:
    """A line break after the answer's first line, unless that line ends with a colon ("The answer is:"),
    which introduces the answer on the next line. Markup lines (a code fence, a directive) do not count."""
    lines = text.split("\n")
    content = [line for line in lines[:-1] if not is_markup(line)] + lines[-1:]
    intro = len(content) > 1 and content[0].rstrip().endswith(":")
    return len(content) > (2 if intro else 1)


@torch.inference_mode()
def generate(reader: ReaderModel, cache, input_ids: list[int], start: int, max_new_tokens: int,
             on_token: Callable[[str], None] | None = None, t0: float | None = None,
             stale: tuple[list[int], list[int]] = ([], [])) -> Generation:
    """Prefill `input_ids` at positions start.. over `cache` (None: nothing before), then decode greedily.
    `t0` is when the request started, so TTFT can include the KV preparation done before the call.
    `stale` = (the cached tokens, positions of theirs to re-encode in the prefill's pass; recompute.py)."""
    model, device = reader.model, reader.device
    t0 = time.perf_counter() if t0 is None else t0
    cache = cache if cache is not None else growing_cache(model.config)
    recorder = AttentionMass()
    cache_arg = with_cache(model, cache)
    tokens: list[int] = []
    text = ""  # streamed so far
    ids = torch.tensor([input_ids], device=device)
    position = start
    ttft = None
    steps = 0
    with record_attention_mass(recorder):
        for _ in range(max_new_tokens):
            if steps == 0 and stale[1]:  # the prefill, with the re-encoded positions
                logits = reencode(model, cache, *stale, feed=input_ids, start=start, recorder=recorder).logits
            else:
                positions = torch.arange(position, position + ids.shape[1], device=device).unsqueeze(0)
                logits = model(input_ids=ids, **cache_arg, position_ids=positions, use_cache=True,
                               logits_to_keep=1).logits
            position += ids.shape[1]
            steps += 1
            scores = logits[0, -1]
            if not tokens:  # an empty answer helps no one (abstaining is decided before): no stop first
                scores = scores.clone()
                scores[list(reader.stop_ids)] = float("-inf")
            token = int(scores.argmax())
            if ttft is None:
                ttft = time.perf_counter() - t0
            if token in reader.stop_ids:
                break
            tokens.append(token)
            new_text = reader.tokenizer.decode(tokens, skip_special_tokens=True).lstrip()
            if _line_ended(new_text):  # the answer is one line; a small reader rambles on after it
                tokens.pop()
                break
            stable = stable_prefix(new_text)
            if on_token and stable.startswith(text) and len(stable) > len(text) and not stable.endswith("\ufffd"):
                on_token(stable[len(text):])
                text = stable
            ids = torch.tensor([[token]], device=device)
    final = clean_answer(reader.tokenizer.decode(tokens, skip_special_tokens=True))
    if on_token and final.startswith(text) and len(final) > len(text):
        on_token(final[len(text):])
    ttft = ttft if ttft is not None else time.perf_counter() - t0
    return Generation(final.strip(), tokens, recorder.mass, ttft, time.perf_counter() - t0 - ttft, steps - 1)
