"""How scan reads its excerpts (answer.scan_read): encoded again with the question (exact) or taken from
their passages' stored KV (kv: reader/slices.py), alone or with the best excerpt re-encoded over the
others in the question's pass (kv-focus: answer.reencode_focus = 1). Each question is scanned once; the same picked
sentences are then read both ways, so the answers differ only by the reading. The questions are
scan_recall.py's: python-docs-qa's 24 over its joined sources (~170K reader tokens) and read_manual.py's
6 over 128K tokens of the manual, with the same checks of the answer.

Time to the first token is the scan's (the same for both) plus `read_s`: the excerpts made ready and the
prefill.
python bench/scan_read.py [--reader NAME] [--sets pydocs,manual]"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402
from read_manual import answered  # noqa: E402
from scan_recall import cases  # noqa: E402

from longdoc.config import Settings  # noqa: E402
from longdoc.evaluation.metrics import contains_answer  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.reader import Reader  # noqa: E402
from longdoc.reader.read import document_passages  # noqa: E402

# exact: encoded again; kv: the rows of the passages' KV alone; kv-focus: and the best excerpt re-encoded
# over the others in the question's pass (answer.reencode_focus = 1)
MODES = {"exact": {"scan_read": "exact"}, "kv": {"scan_read": "kv", "reencode_focus": 0},
         "kv-focus": {"scan_read": "kv", "reencode_focus": 1}}


def passages(reader: Reader, path: Path):
    """The document's passages, their KV computed where the store lacks it (with progress)."""
    t = time.perf_counter()
    hits = document_passages(reader, path)
    done = []
    computed = reader.fill_kv(hits, lambda n: done.append(n) or print(
        f"  KV {sum(done)}/{len(hits)} passages, {time.perf_counter() - t:.0f} s", end="\r", flush=True))
    print(f"{path.name}: {len(hits)} passages, {computed} encoded in {time.perf_counter() - t:.0f} s", flush=True)
    return hits


def scanned_once(reader: Reader):
    """Make the reader's scan remember its last picks, so a second reading of a question reuses them."""
    scan, last = reader._scanned, {}

    def remembered(prompt, hits, question):
        key = (question, len(hits))
        if key not in last:
            last.clear()
            last[key] = scan(prompt, hits, question)
        return last[key]
    reader._scanned = remembered


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reader", default=Settings().reader)
    parser.add_argument("--sets", default="pydocs,manual")
    args = parser.parse_args()
    sets = args.sets.split(",")
    settings = Settings()
    # a store large enough for both documents' KV (~4.8 and 3.7 GB for the 1.5B)
    reader = Reader(args.reader, cache_dir("kv"), replace(settings.answer, kv_max_mb=12288))
    scanned_once(reader)
    rows, documents = [], {}
    for case in (c for c in cases() if c["set"] in sets):
        if case["path"] not in documents:
            documents[case["path"]] = passages(reader, case["path"])
        hits = documents[case["path"]]
        row = {k: case[k] for k in ("set", "id", "question")}
        for mode in MODES:  # the first scans; the others reuse its picks, so their TTFT is that scan's + their read
            reader.settings = replace(reader.settings, **MODES[mode])
            answer = reader.answer(case["question"], hits, "scan", max_new_tokens=24, in_order=True)
            t = answer.timings
            row.setdefault("scan_s", t["scan_s"])
            # python-docs-qa: a gold answer on word boundaries; the manual's ("/", "__len__") as read_manual.py
            right = bool(contains_answer(answer.raw, case["accept"])) if case["set"] == "pydocs" else \
                answered(answer.raw, case["accept"])
            read_s = t["ttft_s"] - t["scan_s"]
            row[mode] = {"answer": answer.raw, "right": right, "ttft_s": row["scan_s"] + read_s, "read_s": read_s,
                         "ms_per_token": t["ms_per_token"], "prompt_tokens": t["prompt_tokens"],
                         "excerpts": t["excerpts"]}
        rows.append(row)
        print(f"{row['id']:10s} " + "  ".join(
            f"{m}: {'OK ' if row[m]['right'] else 'no '}{row[m]['answer']!r:.40} (read {row[m]['read_s']:.1f} s)"
            for m in MODES), flush=True)
    summary = {m: {"right": sum(r[m]["right"] for r in rows), "questions": len(rows),
                   "read_s_median": statistics.median(r[m]["read_s"] for r in rows),
                   "ttft_s_median": statistics.median(r[m]["ttft_s"] for r in rows),
                   "ms_per_token_median": statistics.median(r[m]["ms_per_token"] for r in rows
                                                            if r[m]["ms_per_token"] is not None)} for m in MODES}
    for m in MODES:
        s = summary[m]
        if m != "exact":  # paired against exact: the questions only one of the two got right
            s["only_exact_right"] = sum(r["exact"]["right"] and not r[m]["right"] for r in rows)
            s["only_this_right"] = sum(r[m]["right"] and not r["exact"]["right"] for r in rows)
            s["ttft_ratio_exact_over_this"] = summary["exact"]["ttft_s_median"] / s["ttft_s_median"]
        print(f"{m:8s} {s['right']}/{s['questions']} right, read p50 {s['read_s_median']:.1f} s, TTFT p50 "
              f"{s['ttft_s_median']:.1f} s, {s['ms_per_token_median']:.0f} ms/token" + (
                  "" if m == "exact" else f"; right with exact only {s['only_exact_right']}, with {m} only "
                  f"{s['only_this_right']}; TTFT p50 exact / {m} {s['ttft_ratio_exact_over_this']:.2f}x"))
    name = "scan_read" + ("" if args.reader == Settings().reader else f"-{args.reader}") + \
        ("" if args.sets == parser.get_default("sets") else "-" + "-".join(sets))
    print(f"wrote {write_result(name, {'reader': args.reader, 'sets': sets, 'summary': summary, 'rows': rows})}")


if __name__ == "__main__":
    main()
