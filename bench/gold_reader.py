"""The reader alone: each Quoref question answered from its own (gold) passage, full attention, greedy.
This isolates the reader from retrieval. For each packaged reader and weight precision: EM, F1, contains
(with 95% bootstrap CIs) and seconds per question on this machine.

    python bench/gold_reader.py [--limit 200] [--readers a,b] [--precisions float32,int8] [--name NAME]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import write_result  # noqa: E402

from longdoc.config import ReaderSettings  # noqa: E402
from longdoc.evaluation.bootstrap import bootstrap_ci  # noqa: E402
from longdoc.evaluation.datasets import load_quoref  # noqa: E402
from longdoc.evaluation.metrics import contains_answer, exact_match, f1_score  # noqa: E402
from longdoc.reader import Reader  # noqa: E402
from longdoc.retrieval.hit import Hit  # noqa: E402

READERS = "smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--readers", default=READERS)
    parser.add_argument("--precisions", default="int8")
    parser.add_argument("--name", default=None, help="results file name (default gold_reader-<limit>)")
    args = parser.parse_args()
    data = load_quoref().limited(args.limit)
    rows = []
    for name in args.readers.split(","):
        for precision in args.precisions.split(","):
            reader = Reader(name, None, ReaderSettings(precision=precision, max_new_tokens=32), "cpu")
            scores = {"em": [], "f1": [], "contains": []}
            examples = []
            t0 = time.perf_counter()
            for n, (qid, question) in enumerate(data.queries.items(), 1):
                doc = next(iter(data.qrels[qid]))
                passage = data.corpus[doc]["text"]
                hit = Hit(0, 0, doc, "", (), 0, len(passage), None, None, passage, 0.0)
                answer = reader.answer(question, [hit], "full").raw
                golds = data.answers[qid]
                scores["em"].append(exact_match(answer, golds))
                scores["f1"].append(f1_score(answer, golds))
                scores["contains"].append(contains_answer(answer, golds))
                if len(examples) < 8:
                    examples.append({"question": question, "answer": answer, "gold": golds})
                if n % 25 == 0:
                    print(f"  {name} {precision}: {n}/{len(data.queries)}  EM {sum(scores['em']) / n:.3f}", flush=True)
            seconds = (time.perf_counter() - t0) / len(data.queries)
            row = {"reader": name, "precision": precision, "questions": len(data.queries), "s_per_question": seconds,
                   **{m: sum(v) / len(v) for m, v in scores.items()},
                   **{f"{m}_ci": [bootstrap_ci(v).low, bootstrap_ci(v).high] for m, v in scores.items()}, "examples": examples}
            rows.append(row)
            print(f"{name:30s} {precision:8s} EM {row['em']:.3f} [{row['em_ci'][0]:.3f}, {row['em_ci'][1]:.3f}]  "
                  f"F1 {row['f1']:.3f}  contains {row['contains']:.3f}  {seconds:.2f} s/question", flush=True)
            del reader
    write_result(args.name or f"gold_reader-{args.limit}", {"rows": rows})
    print("\n| reader | precision | EM | F1 | contains | s/question |")
    for r in rows:
        print(f"| {r['reader']} | {r['precision']} | {r['em']:.3f} | {r['f1']:.3f} | {r['contains']:.3f} | {r['s_per_question']:.2f} |")


if __name__ == "__main__":
    main()
