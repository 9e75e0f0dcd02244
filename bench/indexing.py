"""Indexing throughput and memory: longdoc vs a plain baseline, measured in the same run.

Baseline: the same files, the same chunks, the same embedder through sentence-transformers
`encode`, into one flat FAISS inner-product index written to disk. longdoc: `index_paths` on a fresh
index with the default settings (hashing, SQLite catalog, BM25 index, manifest; no head vectors, so its
embedder captures none, as `index_paths` makes it). "MRAG capture" is encoding alone with the head
vectors captured and pooled three ways (what an index with head_vectors = true pays) against
sentence-transformers' encode.
Each measurement runs in its own subprocess so peak RSS is its own. Model loading is excluded.

    python bench/indexing.py [--quick] [--embedder all-mpnet-base-v2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _corpus_files(name: str, limit: int | None) -> list[str]:
    from longdoc.evaluation.corpora import corpus_path
    from longdoc.indexing.discovery import discover

    root = corpus_path(name)
    if name == "python-docs":
        root = root / "library"  # the standard library reference: long technical pages
    files, _ = discover([root])
    return files[:limit] if limit else files


def _chunks_for(files, tokenizer):
    from longdoc.config import Settings
    from longdoc.indexing.chunking import Chunker
    from longdoc.indexing.loaders import load_document

    chunker = Chunker(tokenizer, Settings().chunk)
    return [c.text for f in files for c in chunker.chunk(load_document(f))]


def child(method: str, files: list[str], embedder_name: str) -> dict:
    import faiss
    import numpy as np

    from longdoc.config import DEFAULT_HEAD_POOLING
    from longdoc.indexing.embedder import MultiHeadEmbedder

    # the default index's embedder captures no head vectors; encode-only times the capture
    pooling = None if method == "longdoc" else DEFAULT_HEAD_POOLING
    embedder = MultiHeadEmbedder(embedder_name, device="cpu", pooling=pooling)
    if method != "longdoc":  # the baseline is the sentence-transformers package itself
        from sentence_transformers import SentenceTransformer

        st_model = SentenceTransformer(embedder.source, device="cpu")
    out = {"method": method, "docs": len(files)}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if method == "baseline":
            texts = _chunks_for(files, embedder.tokenizer)
            t_chunked = time.perf_counter()
            vecs = st_model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
            t_encoded = time.perf_counter()
            index = faiss.IndexFlatIP(vecs.shape[1])
            index.add(np.ascontiguousarray(vecs, np.float32))
            faiss.write_index(index, str(Path(tmp) / "flat.faiss"))
            out.update(chunks=len(texts), parse_s=t_chunked - t0, embed_s=t_encoded - t_chunked,
                       store_s=time.perf_counter() - t_encoded)
        elif method == "longdoc":
            from longdoc import index_paths

            from longdoc.config import Settings

            report = index_paths(Path(tmp) / "index", files, Settings(embedder=embedder_name), progress=False,
                                 embedder=embedder)
            tm = report.timings
            out.update(chunks=report.chunks_embedded, parse_s=tm["read"] + tm["parse"], embed_s=tm["embed"],
                       store_s=tm["commit"] + tm["vectors"])
        elif method == "encode-only":
            # Same process, same texts: sentence-transformers encode vs encode with the head capture.
            texts = _chunks_for(files, embedder.tokenizer)
            st_model.encode(texts[:64], batch_size=32)  # warm-up
            t1 = time.perf_counter()
            st_model.encode(texts, batch_size=32, convert_to_numpy=True)
            t2 = time.perf_counter()
            embedder.encode(texts)
            t3 = time.perf_counter()
            out.update(chunks=len(texts), st_encode_s=t2 - t1, multihead_encode_s=t3 - t2)
        out["total_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(method: str, files: list[str], embedder: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", method, "--embedder", embedder], input=json.dumps(files),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 12-essay and 12-page slice")
    parser.add_argument("--embedder", default="all-MiniLM-L6-v2", help="a packaged embedder's name")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(sys.stdin.read()), args.embedder)))
        return

    from rich.console import Console
    from rich.table import Table

    from common import write_result

    corpora = {"paul-graham-essays": _corpus_files("paul-graham-essays", 12 if args.quick else None),
               "python-docs/library (slice)": _corpus_files("python-docs", 12 if args.quick else 30)}
    rows = []
    for name, files in corpora.items():
        base, ours, enc = (run_child(m, files, args.embedder) for m in ("baseline", "longdoc", "encode-only"))
        rows.append({
            "corpus": name, "embedder": args.embedder, "docs": len(files), "chunks": ours["chunks"], "baseline": base, "longdoc": ours,
            "encode_only": enc,
            "ratios": {
                "total_time_vs_baseline": ours["total_s"] / base["total_s"],
                "multihead_capture_vs_st_encode": enc["multihead_encode_s"] / enc["st_encode_s"],
                "catalog_and_faiss_share_of_baseline": (ours["store_s"] - base["store_s"]) / base["total_s"],
                "peak_rss_vs_baseline": ours["peak_rss_mb"] / base["peak_rss_mb"],
            },
        })
    table = Table(title=f"Indexing with {args.embedder}: longdoc vs sentence-transformers encode + flat FAISS "
                        "(same run, same chunks)")
    for col in ("corpus", "docs", "chunks", "baseline s", "longdoc s", "chunks/s", "docs/s", "time ×", "MRAG capture ×",
                "catalog+FAISS +", "RSS MB (base/ours)"):
        table.add_column(col)
    for r in rows:
        b, o, q = r["baseline"], r["longdoc"], r["ratios"]
        table.add_row(r["corpus"], str(r["docs"]), str(r["chunks"]), f"{b['total_s']:.1f}", f"{o['total_s']:.1f}",
                      f"{o['chunks'] / o['total_s']:.1f}", f"{o['docs'] / o['total_s']:.2f}",
                      f"{q['total_time_vs_baseline']:.3f}", f"{q['multihead_capture_vs_st_encode']:.3f}",
                      f"{q['catalog_and_faiss_share_of_baseline']:+.1%}",
                      f"{b['peak_rss_mb']:.0f} / {o['peak_rss_mb']:.0f}")
    Console(width=200).print(table)
    name = ("indexing-quick" if args.quick else "indexing") + ("" if args.embedder == "all-MiniLM-L6-v2" else f"-{args.embedder}")
    path = write_result(name, {"rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
