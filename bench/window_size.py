"""How large a window to read round each retrieved chunk: answer-in-context@k and the words read, on a
Quoref DEV split (questions from the end of the set; reports use the first questions), hybrid search.

    python bench/window_size.py [--dev 300] [--k 5] [--words 0,64,128,192,256,384]

The index is the eval runner's Quoref index (longdoc eval run --dataset quoref builds it)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import write_result  # noqa: E402

from longdoc import open_index  # noqa: E402
from longdoc.evaluation.datasets import _natural, load_quoref  # noqa: E402
from longdoc.evaluation.metrics import answer_in_context  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.retrieval.windows import reading_windows  # noqa: E402


def dev_questions(n: int) -> tuple[dict, list[str]]:
    data = load_quoref()
    return data, sorted(data.queries, key=_natural)[-n:]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dev", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--words", default="0,64,128,192,256,384")
    args = parser.parse_args()
    data, qids = dev_questions(args.dev)
    sizes = [int(w) for w in args.words.split(",")]
    found = {w: 0.0 for w in sizes}
    words = {w: 0 for w in sizes}
    with open_index(cache_dir("eval", "quoref") / "index") as ix:
        for n, qid in enumerate(qids, 1):
            hits = ix.search(data.queries[qid], k=args.k)
            for w in sizes:
                passages = reading_windows(ix.catalog, hits, w) if w else hits
                found[w] += answer_in_context([p.text for p in passages], data.answers[qid])
                words[w] += sum(len(p.text.split()) for p in passages)
            if n % 50 == 0:
                print(f"  {n}/{len(qids)}", flush=True)
    rows = [{"window_words": w, "answer_in_context": found[w] / len(qids), "words_read": words[w] / len(qids)}
            for w in sizes]
    write_result("window_size", {"dev_questions": len(qids), "k": args.k, "rows": rows})
    print(f"\nQuoref dev split ({len(qids)} questions from the end), hybrid k={args.k}")
    print("| window words | answer in context | words read |")
    for r in rows:
        print(f"| {r['window_words'] or 'chunks only'} | {r['answer_in_context']:.3f} | {r['words_read']:.0f} |")


if __name__ == "__main__":
    main()
