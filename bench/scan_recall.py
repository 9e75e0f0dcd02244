"""Does `scan` keep the text that answers? (issue 15, `longdoc read`.) For long documents of the Python
manual, whether the excerpts scan reads hold the answer's text, scoring sentences by the question's
attention alone (answer.scan_lexical = 0) or fused with their BM25 rank at several weights. The
attention is computed once per question; each weight only re-ranks it.

Sets:
- pydocs: python-docs-qa's 24 questions over one document joining their 16 source files (~170K reader
  tokens). Kept: every non-space char of the question's evidence lies in an excerpt. Odd-numbered
  questions are the dev split that chooses the weight; even-numbered ones are reported.
- manual: read_manual.py's 6 questions over its 128K-token document (reported only). Kept: an excerpt
  overlaps the answer's line.
With --answer, read() answers the reported questions with scan at weight 0 and at the chosen weight
(scan_recall-answers.json).

python bench/scan_recall.py [--reader NAME] [--weights 0,0.5,1,2] [--answer]"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402
from read_manual import FILES as MANUAL_FILES, QUESTIONS as MANUAL_QUESTIONS, answered, joined  # noqa: E402

from longdoc.config import Settings  # noqa: E402
from longdoc.evaluation.metrics import contains_answer  # noqa: E402
from longdoc.indexing.loaders import load_document  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.reader import Reader, read  # noqa: E402
from longdoc.reader.read import document_passages  # noqa: E402
from longdoc.reader.scan import attention_sentences, excerpts, pick, with_lexical  # noqa: E402

QA = Path(__file__).parent / "data" / "python_docs_qa.jsonl"


def evidence_span(text: str, evidence: str) -> tuple[int, int]:
    words = evidence.split()
    m = re.search(r"\s+".join(map(re.escape, words)), text)
    if m is None:
        raise SystemExit(f"evidence not in the document: {evidence!r}")
    return m.span()


def line_span(text: str, start: int, line: int) -> tuple[int, int]:
    a = start
    for _ in range(line - 1):
        a = text.index("\n", a) + 1
    return a, text.index("\n", a)


def cases() -> list[dict]:
    """(set, id, question, the document and its text, the answer's char span, accepted answers, split)."""
    rows = [json.loads(line) for line in QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    files = sorted({r["source"] for r in rows})
    path, _ = joined("python-docs-qa-sources.rst", files)
    text = load_document(path).text
    out = [{"set": "pydocs", "id": r["id"], "question": r["question"], "path": path, "text": text,
            "accept": r["answers"],
            "span": evidence_span(text, r["evidence"]), "whole": True,
            "split": "dev" if int(r["id"].split("-")[1]) % 2 else "report"} for r in rows]
    path, starts = joined("python-manual.rst", MANUAL_FILES)
    text = load_document(path).text
    for n, (question, accept, where) in enumerate(MANUAL_QUESTIONS, 1):
        name, line = where.split(":")
        start = next(v for f, v in starts.items() if f.endswith(name))
        out.append({"set": "manual", "id": f"manual-{n}", "question": question, "path": path, "text": text,
                    "accept": accept,
                    "span": line_span(text, start, int(line)), "whole": False, "split": "report"})
    return out


def holds(case: dict, hits, sentence) -> bool:
    """Whether the sentence overlaps the case's answer text."""
    a = hits[sentence.hit].char_start + sentence.start
    lo, hi = case["span"]
    return a < hi and a + sentence.end - sentence.start > lo


def kept(case: dict, parts) -> bool:
    """Whether the excerpts hold the case's answer: all its non-space chars (whole) or any of its line."""
    lo, hi = case["span"]
    if not case["whole"]:
        return any(p.char_start < hi and p.char_end > lo for p in parts)
    covered = set()
    for p in parts:
        covered.update(range(max(lo, p.char_start), min(hi, p.char_end)))
    return all(i in covered for i in range(lo, hi) if not case["text"][i].isspace())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reader", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--weights", default="0,0.25,0.5,1,2,4,1000")
    parser.add_argument("--answer", action="store_true")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    settings = Settings()
    # a store large enough that both documents' KV (~3.6 GB for the 0.5B) stay beside the haystack's
    reader = Reader(args.reader, cache_dir("bench", "needle-kv"), replace(settings.answer, kv_max_mb=8192))
    rows, documents, asked = [], {}, cases()
    for case in asked:
        if case["path"] not in documents:
            t = time.perf_counter()
            hits = document_passages(reader, case["path"])
            done = []
            computed = reader.fill_kv(hits, lambda n: done.append(n) or print(
                f"  KV {sum(done)}/{len(hits)} passages, {time.perf_counter() - t:.0f} s", end="\r", flush=True))
            documents[case["path"]] = hits
            tokens = sum(len(b) for b in reader.prompt("", hits, in_order=True).blocks)
            print(f"{case['path'].name}: {len(hits)} passages, {tokens} reader tokens, {computed} computed in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
        hits = documents[case["path"]]
        t = time.perf_counter()
        scored = attention_sentences(reader, reader.prompt(case["question"], hits, in_order=True), hits,
                                     settings.answer.scan_segment)
        row = {k: case[k] for k in ("set", "id", "question", "split")} | {"scan_s": time.perf_counter() - t,
                                                                           "sentences": len(scored)}
        for w in weights:
            rescored = with_lexical(scored, hits, case["question"], w)
            order = sorted(rescored, key=lambda s: -s.score)
            rank = next((n for n, s in enumerate(order) if holds(case, hits, s)), None)
            parts = excerpts(hits, pick(rescored, settings.answer.scan_keep, settings.answer.scan_context))
            row[f"w{w:g}"] = {"rank": rank, "kept": kept(case, parts)}
        rows.append(row)
        print(f"{row['id']:10s} {row['split']:6s} {row['scan_s']:5.1f} s  " + "  ".join(
            f"{w:g}:{'K' if row[f'w{w:g}']['kept'] else '-'}{row[f'w{w:g}']['rank']}" for w in weights), flush=True)

    def share(split, w, sets=("pydocs", "manual")):
        chosen = [r for r in rows if r["split"] == split and r["set"] in sets]
        return sum(r[f"w{w:g}"]["kept"] for r in chosen), len(chosen)

    table = {f"{w:g}": {"dev": share("dev", w), "pydocs report": share("report", w, ("pydocs",)),
                        "manual": share("report", w, ("manual",))} for w in weights}
    print("weight  dev kept  pydocs report kept  manual kept")
    for w, t in table.items():
        print(f"{w:>6}  {t['dev'][0]}/{t['dev'][1]}  {t['pydocs report'][0]}/{t['pydocs report'][1]}  "
              f"{t['manual'][0]}/{t['manual'][1]}")
    # the smallest weight with the most kept on dev: ties go to less of the new signal
    best = max(weights, key=lambda w: (share("dev", w)[0], -w))
    print(f"chosen on dev: scan_lexical = {best:g}")
    answers = []
    if args.answer:
        for case in asked:
            if case["split"] != "report":
                continue
            for w in sorted({0.0, best}):
                reader.settings = replace(reader.settings, scan_lexical=w)
                answer = read(case["path"], case["question"], "scan", reader=reader, max_new_tokens=24)
                # python-docs-qa: a gold answer on word boundaries; the manual's ("/", "__len__") as read_manual.py
                right = bool(contains_answer(answer.raw, case["accept"])) if case["set"] == "pydocs" else \
                    answered(answer.raw, case["accept"])
                answers.append({"id": case["id"], "weight": w, "answer": answer.raw, "right": right,
                                "ttft_s": answer.timings["ttft_s"]})
                print(f"{case['id']:10s} w={w:g} {'OK ' if right else 'no '} {answer.raw!r:.60}", flush=True)
        for w in sorted({0.0, best}):
            chosen = [a for a in answers if a["weight"] == w]
            print(f"weight {w:g}: {sum(a['right'] for a in chosen)}/{len(chosen)} answers right")
    name = "scan_recall" + ("-answers" if args.answer else "")
    print(f"wrote {write_result(name, {'reader': args.reader, 'weights': weights, 'chosen': best, 'table': table, 'rows': rows, 'answers': answers})}")


if __name__ == "__main__":
    main()
