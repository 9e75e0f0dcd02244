"""Long-context reading over the Paul Graham essays with a packaged reader (--reader; default: the 0.5B Qwen):

1. key recall: the reader's real queries (the question's rows, every layer) over real essay keys at 8K,
   32K and 128K tokens; the share of the exact softmax mass over the memory that the kept keys carry, for
   landmark (mean and min/max representatives) and retrieval, and for blocks chosen from every key's exact
   logit (how the question's rows choose), at several key budgets;
2. passkey: lengths 4K-128K x depths 0-100% in 11 steps; full (up to 4K, where it fits), landmark,
   retrieval and scan; a depth x length heatmap PNG and JSON;
3. speed: ms per decoded token, time to first token and memory held, against context length.

The haystack's passage KV is computed once into the KV store; each trial recomputes only the passage
holding the needle. python bench/long_context.py [--quick] [--reader NAME] [--backends full,landmark,retrieval]
[--no-recall] [--sparse-pin attention|scan] [--seed N] [--min-length K] [--tag T]; `full` runs up to
--full-up-to tokens (a CPU prefill of 16K tokens takes minutes)."""
from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_result  # noqa: E402

from longdoc.attention import sparse  # noqa: E402
from longdoc.attention.block import stitch_cache  # noqa: E402
from longdoc.attention.memory import ContextMemory, use_memory  # noqa: E402
from longdoc.config import Settings  # noqa: E402
from longdoc.evaluation import needle  # noqa: E402
from longdoc.evaluation.corpora import corpus_path  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.reader import Reader  # noqa: E402

K = 1024
_parser = argparse.ArgumentParser()
_parser.add_argument("--quick", action="store_true")
_parser.add_argument("--reader", default="qwen2.5-coder-0.5b-instruct")
_parser.add_argument("--backends", default="full,landmark,retrieval,scan")
_parser.add_argument("--full-up-to", type=int, default=4 * 1024)
_parser.add_argument("--no-recall", action="store_true")
_parser.add_argument("--max-length", type=int, default=128, help="longest context, in K tokens")
_parser.add_argument("--min-length", type=int, default=4, help="shortest context, in K tokens")
_parser.add_argument("--sparse-pin", help="what sparse backends' rows keep: attention | scan (default: the setting's)")
_parser.add_argument("--seed", type=int, default=0, help="seeds the pass keys (another seed: held-out trials)")
_parser.add_argument("--depths", type=int, default=11, help="needle depths from 0 to 100%%")
_parser.add_argument("--tag", default="", help="appended to the result files' names (a run of some backends only)")
ARGS = _parser.parse_args(None if __name__ == "__main__" else [])  # imported: the defaults
QUICK = ARGS.quick
LENGTHS = [4 * K, 8 * K, 16 * K] if QUICK else [n * K for n in (4, 8, 16, 32, 64, 128)
                                                       if ARGS.min_length <= n <= ARGS.max_length]
DEPTHS = [0.0, 0.5, 1.0] if QUICK else [i / (ARGS.depths - 1) for i in range(ARGS.depths)]
RECALL_LENGTHS = [8 * K] if QUICK else [n * K for n in (8, 32, 128) if n <= ARGS.max_length]
NAME = f"long_context-{ARGS.reader}" + ("-quick" if QUICK else "") + (f"-{ARGS.tag}" if ARGS.tag else "")
BUDGETS = [256, 512, 1024, 2048, 4096]
FULL_UP_TO = ARGS.full_up_to


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Capture(ContextMemory):
    """A memory that also keeps the query rows each layer sends it."""

    def __init__(self, base: ContextMemory):
        self.__dict__.update(base.__dict__)
        self.queries: dict[int, torch.Tensor] = {}

    def attend(self, layer, q, scaling):
        self.queries.setdefault(layer, q.detach().clone())
        return super().attend(layer, q, scaling)


def key_recall_table(reader: Reader, passages: list[str]) -> list[dict]:
    """Per length, representative and budget: recall per layer for the question's rows."""
    from longdoc.attention.memory import build_memory

    rows = []
    model = reader.model.model
    # "exact": the blocks chosen from every key's exact logit, as the question's rows choose them
    for kind, rep in (("landmark", "mean"), ("landmark", "minmax"), ("landmark", "exact"), ("retrieval", "mean"),
                      ("retrieval", "exact")):
        spec = reader.settings.sparse_spec(kind)
        spec = type(spec)(kind, spec.block, spec.keys, "mean" if rep == "exact" else rep, spec.kernels)
        for length in RECALL_LENGTHS:
            hits = needle.passage_hits(passages[length])
            prompt = reader.prompt(needle.QUESTION, hits, in_order=True)
            prefix = reader.encoder.prefix(prompt)
            blocks = reader.encoder.blocks(prompt, list(range(len(prompt.blocks))))
            memory = Capture(build_memory(model, blocks, prefix.length, spec, reader.memory_dtype,
                                          prompt.block_keys, reader.parts))
            cache = stitch_cache(model, [prefix], reader.model.dtype)
            start = memory.question_start(reader.settings.memory_gap)
            ids = torch.tensor([prompt.suffix])
            with torch.inference_mode(), use_memory(memory):
                model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1,
                      position_ids=torch.arange(start, start + ids.shape[1]).unsqueeze(0))
            valid = memory.valid
            scaling = reader.model.model.model.layers[0].self_attn.scaling
            s_rows = ids.shape[1]
            per_budget = {budget: {"keys_read_share": min(1.0, max(1, budget // spec.block) * spec.block / memory.length),
                                   "recall": [], "recall_memory": [], "oracle": []} for budget in BUDGETS}
            for layer in sorted(memory.queries):
                q = memory.queries[layer]
                keys = memory.keys[layer][:, valid]
                # the keys always attended (sink: the system turn; local: the question), causal per row
                local_k, local_v = cache.layers[layer].keys[0], cache.layers[layer].values[0]
                p_len = local_k.shape[1] - s_rows
                causal = torch.arange(p_len + s_rows)[None, :] <= torch.arange(s_rows)[:, None] + p_len
                _, lse_rest = sparse.attend(q, local_k, local_v, scaling, causal[:, None, :].expand(-1, keys.shape[0], -1))
                if rep == "exact":
                    lse = sparse.exact_block_lse(q, memory.keys[layer], valid, spec.block, scaling)
                    scores = torch.log_softmax(lse, -1).view(s_rows, keys.shape[0], -1, lse.shape[-1]).amax(2)
                else:
                    scores = sparse.block_scores(q, memory.reps[layer], rep)
                logits = torch.einsum("shgd,htd->shgt", q.float().view(s_rows, keys.shape[0], -1, q.shape[-1]),
                                      keys.float()).amax(2)
                for budget, out in per_budget.items():
                    top_k = max(1, budget // spec.block)
                    kept = sparse.block_key_mask(sparse.select_blocks(scores, top_k), spec.block, valid.shape[0])[..., valid]
                    out["recall"].append(sparse.key_recall(q, keys, kept, scaling, lse_rest).mean().item())
                    out["recall_memory"].append(sparse.key_recall(q, keys, kept, scaling).mean().item())
                    # the best any selection of that many keys could do: the exact top keys per row and head
                    n = min(top_k * spec.block, keys.shape[1])
                    best = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(n, dim=-1).indices, True)
                    out["oracle"].append(sparse.key_recall(q, keys, best, scaling, lse_rest).mean().item())
            for out in per_budget.values():
                for name in ("recall", "recall_memory", "oracle"):
                    out[f"{name}_mean"] = sum(out[name]) / len(out[name])
                out["recall_min_layer"] = min(out["recall"])
            rows.append({"kind": kind, "rep": rep, "block": spec.block, "tokens": memory.length, "budgets": per_budget})
            for budget, b in per_budget.items():
                print(f"recall {kind:9s} {rep:6s} {memory.length:7d} tokens, {budget:4d} keys ({b['keys_read_share']:5.1%}): "
                      f"{b['recall_mean']:.3f} (worst layer {b['recall_min_layer']:.3f}; memory only "
                      f"{b['recall_memory_mean']:.3f}; exact top keys {b['oracle_mean']:.3f})", flush=True)
    return rows


def heatmap(trials: list[dict], path: Path, pin: str) -> None:
    from longdoc.evaluation.plots import needle_heatmap

    panels: dict[str, dict] = {}
    for t in trials:
        label = f"{t['backend']} (pinned by {pin})" if t["backend"] in ("landmark", "retrieval") else t["backend"]
        panels.setdefault(label, {})[(t["depth"], t["target"])] = float(t["found"])
    needle_heatmap(panels, path, f"Passkey in the Paul Graham essays, {ARGS.reader}, 2-core CPU")


def main():
    settings = Settings()
    if ARGS.sparse_pin:
        settings = settings.replace(answer_sparse_pin=ARGS.sparse_pin)
    reader = Reader(ARGS.reader, cache_dir("bench", "needle-kv"), settings.answer)
    reader.parts.max_bytes = 8 * 2**30  # both kinds' prepared 128K memories stay cached
    tok = reader.model.tokenizer
    hay = needle.build_haystack(tok, needle.essay_sentences(corpus_path("paul-graham-essays")), max(LENGTHS))
    counts = [len(tok(" " + p, add_special_tokens=False)["input_ids"]) for p in hay.passages]
    t0 = time.perf_counter()
    reader.fill_kv(needle.passage_hits(hay.passages))
    print(f"haystack: {len(hay.passages)} passages, {hay.tokens} tokens, KV ready in {time.perf_counter() - t0:.0f} s",
          flush=True)
    passages = {n: needle.haystack_prefix(hay, counts, n).passages for n in set(LENGTHS + RECALL_LENGTHS)}

    recall = [] if ARGS.no_recall else key_recall_table(reader, passages)
    write_result(NAME, {"key_recall": recall, "trials": []})

    rng = random.Random(ARGS.seed)
    trials = []
    for length in LENGTHS:
        base = needle.Haystack(passages[length], sum(counts[:len(passages[length])]))
        backends = [b for b in ARGS.backends.split(",") if b != "full" or length <= FULL_UP_TO]
        keys = [needle.pass_key(rng) for _ in DEPTHS]
        for backend in backends:
            for depth, key in zip(DEPTHS, keys):
                texts, where = needle.insert_needle(base, depth, key)
                hits = needle.passage_hits(texts)
                t = time.perf_counter()
                a = reader.answer(needle.QUESTION, hits, backend, max_new_tokens=12, in_order=True)
                trials.append({"target": length, "tokens": a.timings["prompt_tokens"], "depth": depth,
                               "backend": backend, "key": key, "answer": a.raw, "found": needle.found(a.raw, key),
                               "needle_passage": where, "top_citation": a.citations[0].chunk_id if a.citations else None,
                               "ttft_s": a.timings["ttft_s"], "ms_per_token": a.timings["ms_per_token"],
                               "keys_read_share": a.timings.get("keys_read_share"), "wall_s": time.perf_counter() - t,
                               "rss_mb": rss_mb()})
                r = trials[-1]
                print(f"{length // K:4d}K depth {depth:.1f} {backend:9s} {'OK ' if r['found'] else 'no '} {a.raw!r:40.40s} "
                      f"ttft {r['ttft_s']:.1f}s {r['ms_per_token'] or 0:.0f} ms/tok wall {r['wall_s']:.1f}s", flush=True)
        write_result(NAME, {"key_recall": recall, "trials": trials})

    summary = {}
    for t in trials:
        s = summary.setdefault(f"{t['backend']}@{t['target'] // K}K", {"n": 0, "found": 0, "ms_per_token": [], "ttft_s": []})
        s["n"] += 1
        s["found"] += t["found"]
        s["ms_per_token"].append(t["ms_per_token"] or 0)
        s["ttft_s"].append(t["ttft_s"])
    for s in summary.values():
        s["accuracy"] = s["found"] / s["n"]
        s["ms_per_token"] = sorted(s["ms_per_token"])[len(s["ms_per_token"]) // 2]
        s["ttft_s"] = sorted(s["ttft_s"])[len(s["ttft_s"]) // 2]
    write_result(NAME, {"key_recall": recall, "sparse_pin": settings.answer.sparse_pin, "summary": summary, "trials": trials})
    heatmap(trials, RESULTS / f"{NAME.replace('long_context', 'needle_heatmap')}.png", settings.answer.sparse_pin)
    for name, s in summary.items():
        print(f"{name:16s} accuracy {s['accuracy']:.2f}  ttft {s['ttft_s']:.1f} s  {s['ms_per_token']:.0f} ms/token")


if __name__ == "__main__":
    main()
