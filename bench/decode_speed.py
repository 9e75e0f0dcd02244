"""Decode cost against context length on this CPU, the default reader, essays haystack, passage KV
already in the KV store (bench/long_context.py fills it):
- block: exact attention over every context key (Block-Attention's stitched cache), the baseline;
- landmark and retrieval: sparse attention over the context memory.
Full prefill is left out past 8K: it is quadratic and minutes long here (bench/long_context.py has it
at 4K and 8K). Each (length, backend) answers one question; the peak RSS is sampled during the answer
(earlier answers' caches still count in it, so the memory each backend holds is also given).

python bench/decode_speed.py"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from longdoc.config import Settings  # noqa: E402
from longdoc.evaluation import needle  # noqa: E402
from longdoc.evaluation.corpora import corpus_path  # noqa: E402
from longdoc.evaluation.memory import PeakRSS  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.reader import Reader  # noqa: E402

K = 1024
LENGTHS = [4 * K, 16 * K, 32 * K, 64 * K, 128 * K]
NEW_TOKENS = 16


def main():
    settings = Settings()
    reader = Reader(settings.reader, cache_dir("bench", "needle-kv"), settings.answer)
    reader.parts.max_bytes = 7 * 2**30  # both sparse kinds' passages stay prepared across lengths
    tok = reader.model.tokenizer
    hay = needle.build_haystack(tok, needle.essay_sentences(corpus_path("paul-graham-essays")), max(LENGTHS))
    counts = [len(tok(" " + p, add_special_tokens=False)["input_ids"]) for p in hay.passages]
    config = reader.model.model.config
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    rows = []
    for length in LENGTHS:
        n = next(i for i in range(1, len(counts) + 1) if sum(counts[:i]) >= length)
        hits = needle.passage_hits(hay.passages[:n])
        # block's float32 cache is stitched straight into its buffers: 128K fits in this machine's 24 GB
        # (it did not while stitching held the context three times over: 19.8 GB peak at 64K)
        for backend in ("block", "landmark", "retrieval"):
            reader.answer(needle.QUESTION, hits, backend, max_new_tokens=1, in_order=True)  # caches warm
            with PeakRSS() as rss:
                a = reader.answer(needle.QUESTION, hits, backend, max_new_tokens=NEW_TOKENS, in_order=True)
            t = a.timings
            held = per_token * t["prompt_tokens"] * (4 if backend == "block" else 2)  # float32 cache / float16 memory
            rows.append({"target": length, "tokens": t["prompt_tokens"], "backend": backend, "ttft_s": t["ttft_s"],
                         "ms_per_token": t["ms_per_token"], "decode_steps": t["new_tokens"],
                         "keys_read_share": t.get("keys_read_share", 1.0), "kv_held_mb": held / 1e6,
                         "rss_peak_mb": rss.peak / 1e6, "rss_start_mb": rss.start / 1e6})
            r = rows[-1]
            print(f"{length // K:4d}K {backend:9s} ttft {r['ttft_s']:6.2f} s  {r['ms_per_token']:7.1f} ms/token  "
                  f"keys read {r['keys_read_share']:6.1%}  KV held {r['kv_held_mb']:7.0f} MB  RSS peak {r['rss_peak_mb']:7.0f} MB",
                  flush=True)
    block = {r["target"]: r for r in rows if r["backend"] == "block"}
    for r in rows:
        base = block.get(r["target"])
        r["ms_per_token_vs_block"] = base["ms_per_token"] / r["ms_per_token"] if base else None
    write_result("decode_speed", {"rows": rows})
    print("\n| tokens | backend | TTFT s | ms/token | block / this | keys read | KV held MB | RSS peak MB |")
    for r in rows:
        print(f"| {r['tokens']} | {r['backend']} | {r['ttft_s']:.2f} | {r['ms_per_token']:.0f} | "
              f"{r['ms_per_token_vs_block'] or 0:.2f}x | {r['keys_read_share']:.1%} | {r['kv_held_mb']:.0f} | {r['rss_peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
