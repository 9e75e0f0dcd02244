"""Time to first token and total latency of the reader, full prefill vs Block-Attention, against the
number of retrieved passages (1, 5, 10, 20, 50).

The Paul Graham essays are indexed with 254-token chunks (about 300 reader tokens per passage), so 50
passages are about 13k context tokens. `block` reads each passage's KV from the KV store, already filled as
`longdoc index --kv` would; `block-cold` is the first ask, which computes and stores the KV.
Answers decode greedily until the reader stops (at most 16 tokens); TTFT and total are medians over the
repeats. The baseline (`full`) is measured in the same run.

    python bench/reader.py [--quick]     # --quick: 1, 5 and 20 passages, one repeat
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common import write_result  # noqa: E402

from longdoc import index_paths, load_settings, open_index  # noqa: E402
from longdoc.evaluation.corpora import corpus_path  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402

QUESTION = "What did the author learn about how startups get their ideas?"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--counts", default=None, help="comma-separated passage counts")
    parser.add_argument("--reader", default=None, help="reader (default: the settings' default)")
    parser.add_argument("--reencode", type=int, default=None, help="also time block with this reencode_first")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")] if args.counts else ([1, 5, 20] if args.quick else [1, 5, 10, 20, 50])
    workdir = cache_dir("bench", "reader")
    # passages are the 254-token chunks themselves (no reading windows), so the count is what is read
    settings = load_settings(chunk_tokens=254, chunk_overlap=16, reader=args.reader, answer_window_words=0)
    index_paths(workdir / "index", [corpus_path("paul-graham-essays")], settings, progress=True)
    shutil.rmtree(workdir / "index" / "kv", ignore_errors=True)  # every run starts with an empty KV store
    rows = []
    with open_index(workdir / "index", settings=settings) as ix:
        reader = ix.reader
        hits_all = ix.search(QUESTION, k=max(counts))
        reader.answer(QUESTION, hits_all[:1], "full", max_new_tokens=2)  # warm-up
        for n in counts:
            hits = hits_all[:n]
            repeats = 1 if (args.quick or n >= 20) else 3
            row = {"passages": n}
            cold = reader.answer(QUESTION, hits, "block", max_new_tokens=16)
            row["block-cold"] = {"ttft_ms": 1000 * cold.timings["ttft_s"], "blocks_computed": cold.timings["blocks_computed"]}
            backends = [("full", 0), ("block", 0)] + ([(f"block-e{args.reencode}", args.reencode)] if args.reencode else [])
            for backend, reencode in backends:
                runs = [reader.answer(QUESTION, hits, backend.split("-")[0], max_new_tokens=16, reencode_first=reencode)
                        for _ in range(repeats)]
                row[backend] = {"ttft_ms": statistics.median(1000 * a.timings["ttft_s"] for a in runs),
                                "total_ms": statistics.median(1000 * (a.timings["ttft_s"] + a.timings["decode_s"]) for a in runs),
                                "new_tokens": runs[0].timings["new_tokens"], "ms_per_token": runs[0].timings["ms_per_token"],
                                "answer": runs[0].raw}
            row["prompt_tokens"] = runs[0].timings["prompt_tokens"]
            row["ttft_speedup"] = row["full"]["ttft_ms"] / row["block"]["ttft_ms"]
            rows.append(row)
            if args.reencode:
                e = row[f"block-e{args.reencode}"]
                print(f"    block-e{args.reencode}: TTFT {e['ttft_ms']:.0f} ms, {e['ms_per_token']:.0f} ms/token")
            print(f"{n:>3} passages {row['prompt_tokens']:>6} tokens | TTFT full {row['full']['ttft_ms']:>8.0f} ms  "
                  f"block {row['block']['ttft_ms']:>6.0f} ms ({row['ttft_speedup']:5.1f}x)  block-cold "
                  f"{row['block-cold']['ttft_ms']:>8.0f} ms | total full {row['full']['total_ms']:>8.0f}  "
                  f"block {row['block']['total_ms']:>6.0f} ms", flush=True)
        kv = ix.kv_store().stats()
    name = "reader" + (f"-{Path(args.reader).name}" if args.reader else "") + ("-quick" if args.quick else "")
    path = write_result(name, {
        "question": QUESTION, "reader": reader.model.name, "precision": reader.model.precision,
        "kv_dtype": reader.settings.kv_dtype,
        "chunk_tokens": 254, "rows": rows, "kv_store_bytes": kv["bytes"], "kv_entries": kv["entries"]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
