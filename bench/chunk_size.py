"""How chunk size affects finding a needle: the measurement behind the default chunk settings.

Five needle sentences are planted at depths 10..90% in five Paul Graham essays; the whole corpus
(49 essays) is indexed at each chunk size and each needle's question is searched. A needle is
found at rank r when the r-th hit contains the whole needle sentence.

    python bench/chunk_size.py [--sizes 64,128,192,254]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# (essay file, depth, needle, question): sentences written for this benchmark.
NEEDLES = [
    ("avg.txt", 0.1, "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.",
     "What is the best thing to do in San Francisco?"),
    ("founders.txt", 0.3, "The secret ingredient in Grandma Rosa's harbour stew is smoked paprika from Murcia.",
     "What is the secret ingredient in Grandma Rosa's stew?"),
    ("hubs.txt", 0.5, "The passcode for the old observatory door on Kestrel Hill is 7391.",
     "What is the passcode for the observatory door?"),
    ("love.txt", 0.7, "Marvin the ferret learned to open the refrigerator by himself in March 2019.",
     "Which animal learned to open the refrigerator?"),
    ("wisdom.txt", 0.9, "The annual kite festival in Port Ellery is held on the second Saturday of October.",
     "When is the kite festival in Port Ellery held?"),
]


def plant(corpus: Path) -> None:
    for name, depth, needle, _ in NEEDLES:
        path = corpus / name
        text = path.read_text()
        at = int(len(text) * depth)
        at = text.find(". ", at) + 2  # next sentence boundary
        path.write_text(text[:at] + needle + " " + text[at:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,128,192,254")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from common import write_result
    from longdoc import index_paths, open_index
    from longdoc.config import Settings
    from longdoc.evaluation.corpora import corpus_path
    from longdoc.indexing.embedder import MultiHeadEmbedder

    embedder = MultiHeadEmbedder("all-MiniLM-L6-v2", device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "essays"
        shutil.copytree(corpus_path("paul-graham-essays"), corpus)
        plant(corpus)
        for size in [int(s) for s in args.sizes.split(",")]:
            settings = Settings().replace(chunk_tokens=size, chunk_overlap=max(8, size // 8))
            t0 = time.perf_counter()
            report = index_paths(Path(tmp) / f"index-{size}", [corpus], settings, progress=False, embedder=embedder)
            seconds = time.perf_counter() - t0
            with open_index(Path(tmp) / f"index-{size}") as ix:
                ix._embedder = embedder
                ranks = {}
                for mode in ("dense", "bm25"):
                    found = []
                    for _, _, needle, question in NEEDLES:
                        hits = ix.search(question, k=100, mode=mode)
                        found.append(next((i + 1 for i, h in enumerate(hits) if needle in h.text), None))
                    ranks[mode] = found
            rows.append({"chunk_tokens": size, "overlap": settings.chunk.overlap, "chunks": report.chunks_embedded,
                         "index_s": seconds, "ranks": ranks})
    table = Table(title="Needle rank by chunk size (49 essays, 5 needles; rank of the chunk holding the needle)")
    for col in ("chunk tokens", "chunks", "index s", "dense ranks", "dense hit@1", "dense hit@5", "bm25 ranks"):
        table.add_column(col)
    for r in rows:
        d = r["ranks"]["dense"]
        table.add_row(str(r["chunk_tokens"]), str(r["chunks"]), f"{r['index_s']:.0f}", str(d),
                      f"{sum(x == 1 for x in d)}/5", f"{sum(x is not None and x <= 5 for x in d)}/5", str(r["ranks"]["bm25"]))
    Console(width=200).print(table)
    print(f"wrote {write_result('chunk_size', {'needles': NEEDLES, 'rows': rows})}")


if __name__ == "__main__":
    main()
