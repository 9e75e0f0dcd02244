"""Choices made on a Quoref DEV split (questions from the end of the set; reports use the first ones):
end-to-end EM/F1 of the reader for several settings, with paired differences against the first.

    python bench/dev_sweep.py --name recovery --dev 60 \
        --configs 'full;block;block reencode_first=16;block reencode_first=32'
    python bench/dev_sweep.py --name window --dev 60 --configs 'block window_words=0;block window_words=128'

Each config is `<attention> [answer setting=value ...]`; `instruction=@name` names one of INSTRUCTIONS.
The index is the eval runner's Quoref index."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import write_result  # noqa: E402
from window_size import dev_questions  # noqa: E402

from longdoc import load_settings, open_index  # noqa: E402
from longdoc.evaluation.bootstrap import bootstrap_ci, paired_difference  # noqa: E402
from longdoc.evaluation.metrics import answer_in_context, exact_match, f1_score  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402


# Candidate system turns for the reader (`instruction=@name`).
INSTRUCTIONS = {
    "terse": "Answer the question from the passages. Reply with only the answer, a name, number or short "
             "phrase copied from the passages, never a full sentence.",
    "general": "Answer the question from the passages. If it asks who, what, which, when or how many, reply "
               "with only the name, number or short phrase from the passages; if it asks how or why, reply "
               "with one short sentence.",
    "names": "Answer the question from the passages. If it asks who, what, which, when or how many, reply "
             "with only the name, number or short phrase from the passages; if it asks for a first or last name, "
             "reply with only that part of the name; if it asks how or why, reply with one short sentence.",
    "exact": "Read the passages, then answer the question with the exact words of the passages that answer it: "
             "a name, a number or a short phrase. Do not write a sentence.",
}


def parse(config: str) -> tuple[str, dict]:
    attention, *pairs = config.split()
    overrides = dict(p.split("=", 1) for p in pairs)
    if overrides.get("instruction", "").startswith("@"):
        overrides["instruction"] = INSTRUCTIONS[overrides["instruction"][1:]]
    return attention, {f"answer_{k}": v for k, v in overrides.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--dev", type=int, default=60)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--reader", default=None)
    parser.add_argument("--configs", required=True, help="';'-separated configs")
    args = parser.parse_args()
    data, qids = dev_questions(args.dev)
    configs = [c.strip() for c in args.configs.split(";")]
    scores = {c: {"em": {}, "f1": {}, "aic": {}, "ttft": {}, "answers": {}} for c in configs}
    base = load_settings(reader=args.reader)
    with open_index(cache_dir("eval", "quoref") / "index", settings=base) as ix:
        for n, qid in enumerate(qids, 1):
            hits = ix.search(data.queries[qid], k=args.k)
            for config in configs:
                attention, overrides = parse(config)
                ix.settings = base.replace(**{k: type(getattr(base.answer, k[7:]))(v) for k, v in overrides.items()})
                ix.reader.settings = ix.settings.answer
                if attention == "block":  # passage KV stored beforehand, as `index --kv` does
                    ix.reader.fill_kv(ix.reading_passages(hits))
                a = ix.answer_hits(data.queries[qid], hits, attention)
                golds = data.answers[qid]
                s = scores[config]
                s["em"][qid], s["f1"][qid] = exact_match(a.raw, golds), f1_score(a.raw, golds)
                s["aic"][qid] = answer_in_context([c.text for c in a.citations], golds) if a.citations else 0.0
                s["ttft"][qid] = a.timings.get("ttft_s", 0.0)
                s["answers"][qid] = {"answer": a.raw, "golds": golds}
            if n % 10 == 0:
                print(f"  {n}/{len(qids)}  " + "  ".join(
                    f"{c}: F1 {sum(scores[c]['f1'].values()) / n:.3f}" for c in configs), flush=True)
    rows = []
    first = configs[0]
    for c in configs:
        s = scores[c]
        row = {"config": c, "em": bootstrap_ci(list(s["em"].values())).mean, "f1": bootstrap_ci(list(s["f1"].values())).mean,
               "answer_in_context": sum(s["aic"].values()) / len(qids),
               "ttft_p50_s": sorted(s["ttft"].values())[len(qids) // 2],
               "delta_f1_vs_first": str(paired_difference(scores[first]["f1"], s["f1"])), "answers": s["answers"]}
        rows.append(row)
    write_result(f"dev_sweep-{args.name}", {"dev_questions": len(qids), "k": args.k, "reader": base.reader,
                                            "rows": rows, "time": time.time()})
    print(f"\nQuoref dev split ({len(qids)} questions from the end), hybrid k={args.k}, reader {base.reader}")
    print(f"| config | EM | F1 | answer in context | TTFT p50 s | Δ F1 vs {first} |")
    for r in rows:
        print(f"| {r['config']} | {r['em']:.3f} | {r['f1']:.3f} | {r['answer_in_context']:.3f} | {r['ttft_p50_s']:.2f} | {r['delta_f1_vs_first']} |")


if __name__ == "__main__":
    main()
