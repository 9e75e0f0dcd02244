"""`longdoc read` over the largest files of the Python manual (issue 15, item 4): the library reference's
stdtypes and os pages and the language reference's data model joined into one document of 100K+ reader
tokens, read whole with no retrieval stage
(`auto` attention: past exact_up_to it is the sparse long_attention), asked questions whose answers were
looked up in the text by hand (line numbers below, in python3.11-doc's _sources).

The first question pays for computing every passage's KV (stored, content-keyed); the others reuse the
memory built for it (landmark, retrieval) or the generic question's attention per segment (scan).
python bench/read_manual.py [--reader NAME] [--attention auto|landmark|retrieval|scan]"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from longdoc.config import Settings  # noqa: E402
from longdoc.evaluation.corpora import corpus_path  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.reader import Reader, read  # noqa: E402

FILES = ["library/stdtypes.rst.txt", "library/os.rst.txt", "reference/datamodel.rst.txt"]
# (question, strings any of which in the answer counts as right, where the answer is)
QUESTIONS = [
    ("Which int method returns the number of ones in the binary representation of an integer?", ["bit_count"],
     "stdtypes.rst.txt:482"),
    ("What is the default value of maxsplit in str.rsplit?", ["-1"], "stdtypes.rst.txt:2008"),
    ("Which digit does str.zfill pad a string with?", ["0", "zero"], "stdtypes.rst.txt:2248"),
    ("Which os function returns a string representing the current working directory?", ["getcwd"],
     "os.rst.txt:1969"),
    ("Which character separates pathname components on POSIX, according to os.sep?", ["/"], "os.rst.txt:4937"),
    ("Which special method is called to implement the built-in function len()?", ["__len__"],
     "datamodel.rst.txt:2460"),
]


def answered(raw: str, accept: list[str]) -> bool:
    """Any accepted string inside the answer, case-folded: "/" and "__len__" survive, unlike SQuAD normalising."""
    return any(a.lower() in raw.lower() for a in accept)


def joined(name: str, files: list[str]) -> tuple[Path, dict[str, int]]:
    """The manual's files joined into one document in the bench cache, and each file's first char in it."""
    root = corpus_path("python-docs")
    texts = [(root / f).read_text(encoding="utf-8") for f in files]
    starts, at = {}, 0
    for f, t in zip(files, texts):
        starts[f] = at
        at += len(t) + 2
    path = Path(cache_dir("bench")) / name
    path.write_text("\n\n".join(texts), encoding="utf-8")
    return path, starts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reader", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--attention", default="auto")
    args = parser.parse_args()
    path, _ = joined("python-manual.rst", FILES)
    settings = Settings()
    reader = Reader(args.reader, cache_dir("kv"), settings.answer)
    tokens = len(reader.model.tokenizer(path.read_text(encoding="utf-8"))["input_ids"])
    print(f"{path.name}: {FILES} joined, {tokens} reader tokens", flush=True)
    rows = []
    for question, accept, where in QUESTIONS:
        t = time.perf_counter()
        answer = read(path, question, args.attention, settings, reader=reader, max_new_tokens=24)
        wall = time.perf_counter() - t
        right = answered(answer.raw, accept)
        top = answer.citations[0] if answer.citations else None
        rows.append({"question": question, "accept": accept, "where": where, "answer": answer.raw, "right": right,
                     "attention": answer.attention, "wall_s": wall, "ttft_s": answer.timings["ttft_s"],
                     "ms_per_token": answer.timings["ms_per_token"],
                     "keys_read_share": answer.timings.get("keys_read_share"),
                     "blocks_computed": answer.timings["blocks_computed"],
                     "top_citation": top.text[:120] if top else None})
        print(f"{'OK ' if right else 'no '} {question[:60]:60s} -> {answer.raw!r:.40} ({answer.attention}, wall {wall:.0f} s, "
              f"ttft {answer.timings['ttft_s']:.1f} s, {answer.timings['blocks_computed']} passages encoded)", flush=True)
    right = sum(r["right"] for r in rows)
    print(f"{right}/{len(rows)} right")
    name = ("read_manual" + ("" if args.reader == parser.get_default("reader") else f"-{args.reader}")
            + ("" if args.attention == "auto" else f"-{args.attention}"))
    print(f"wrote {write_result(name, {'reader': args.reader, 'attention': args.attention, 'files': FILES, 'tokens': tokens, 'right': right, 'rows': rows})}")


if __name__ == "__main__":
    main()
