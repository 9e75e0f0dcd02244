"""Which passages to mark [n] in an answer: sweep the share-of-top ratio over a QA evaluation's answers.

Reads the per-question citations (attention shares, in citation order) of the JSON results of the former `longdoc eval qa` (bench/results/eval-qa-*.json), so
the reader is not run again. A passage is marked when its share of the answer's attention is at least
`ratio` x the top passage's share. Precision: marked passages from the gold passage; recall: questions
where a gold passage was retrieved and is marked.

    python bench/citations.py bench/results/eval-qa-quoref.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import write_result  # noqa: E402

RATIOS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def sweep(rows: list[tuple[list[dict], set[str]]], ratio: float) -> dict:
    marked_gold = marked = found = answerable = 0
    for citations, gold in rows:
        if not citations:
            continue
        top = citations[0]["attention"]
        cited = [Path(c["path"]).stem in gold for c in citations if top > 0 and c["attention"] >= ratio * top]
        marked += len(cited)
        marked_gold += sum(cited)
        if any(Path(c["path"]).stem in gold for c in citations):
            answerable += 1
            found += any(cited)
    return {"ratio": ratio, "precision": marked_gold / max(1, marked), "recall": found / max(1, answerable),
            "marked_per_answer": marked / max(1, len(rows))}


def main():
    data = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/eval-qa-quoref.json").read_text())
    out = {"source": sys.argv[1:] or ["bench/results/eval-qa-quoref.json"], "backends": {}}
    for backend in data["backends"]:
        rows = [(q[backend]["citations"], set(q["gold"])) for q in data["per_question"].values()]
        out["backends"][backend] = [sweep(rows, r) for r in RATIOS]
        print(backend)
        for s in out["backends"][backend]:
            f1 = 2 * s["precision"] * s["recall"] / max(1e-9, s["precision"] + s["recall"])
            print(f"  ratio {s['ratio']:.1f}: precision {s['precision']:.3f} recall {s['recall']:.3f} "
                  f"F1 {f1:.3f} marked/answer {s['marked_per_answer']:.2f}")
    print(f"wrote {write_result('citations', out)}")


if __name__ == "__main__":
    main()
