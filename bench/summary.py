"""bench/results/SUMMARY.md: every headline figure of the benchmark suite as a ratio to the baseline
measured in the same run, with the date and hardware of the run it comes from.

    python bench/summary.py [--quick]     # --quick: read the *-quick results make bench-quick wrote
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _load(name: str, quick: bool):
    """The quick result when asked for and present, else the full one (say which), else None."""
    for candidate in ([f"{name}-quick", name] if quick else [name]):
        path = RESULTS / f"{candidate}.json"
        if path.exists():
            return candidate, json.loads(path.read_text())
    return None, None


def _where(data: dict) -> str:
    meta = data.get("meta", data)
    hw = meta.get("hardware", {})
    machine = hw.get("gpu") or meta.get("gpu") or f"{hw.get('cpus', '?')}-core {hw.get('machine', 'CPU')}, no GPU"
    return f"{str(meta.get('date', '?'))[:10]}, {machine}, `{meta.get('command', '?')}`"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(r) + " |" for r in rows], ""]


def peers(quick: bool) -> list[str]:
    name, d = _load("peers", quick)
    if not d:
        return ["_peers: not run_", ""]
    out = [f"### Retrieval against peers ({name}: {_where(d)})", "",
           f"Quoref, first {d['passages']} passages, {d['questions']} questions about them, all-MiniLM-L6-v2 in every "
           "system. Baseline: sentence-transformers + flat FAISS. Ratios are system / baseline; recall differences "
           "are absolute.", ""]
    rows = []
    for r in d["rows"]:
        v = r.get("vs_baseline", {})
        rows.append([r["system"], f"{r['recall@5']:.3f} ({v.get('recall@5', 0):+.3f})", f"{r['recall@20']:.3f}",
                     f"{r['mrr@10']:.3f} ({v.get('mrr@10', 0):+.3f})", f"{r['build_s']:.1f} s ({v.get('build_time', 1):.2f}×)",
                     f"{r['query_p50_ms']:.1f} ms ({v.get('query_p50', 1):.2f}×)", f"{r['query_p95_ms']:.1f} ms",
                     f"{r['peak_rss_mb']:.0f} MB ({v.get('peak_rss', 1):.2f}×)"])
    out += _table(["system", "recall@5 (Δ)", "recall@20", "MRR@10 (Δ)", "build (×)", "query p50 (×)", "p95",
                   "peak RSS (×)"], rows)
    out += [f"- {s} could not run: {why}" for s, why in d.get("failures", {}).items()]
    return out + ([""] if d.get("failures") else [])


def indexing(quick: bool) -> list[str]:
    name, d = _load("indexing", quick)
    if not d:
        return ["_indexing: not run_", ""]
    rows = [[r["corpus"], str(r["docs"]), str(r["chunks"]), f"{r['baseline']['total_s']:.1f}", f"{r['longdoc']['total_s']:.1f}",
             f"{r['ratios']['total_time_vs_baseline']:.2f}×", f"{r['ratios']['peak_rss_vs_baseline']:.2f}×"]
            for r in d["rows"]]
    return [f"### Indexing ({name}: {_where(d)})", "", "Baseline: the same chunks through sentence-transformers "
            "encode into one flat FAISS index. longdoc adds the 12 head vectors, SQLite + FTS5 and 13 FAISS indexes.", "",
            *_table(["corpus", "docs", "chunks", "baseline s", "longdoc s", "time ×", "peak RSS ×"], rows)]


def search(quick: bool) -> list[str]:
    name, d = _load("search", quick)
    if not d:
        return ["_search: not run_", ""]
    rows = [[f"{r['chunks']:,}", *[f"{r['modes'][m]['p50_ms']:.1f}" for m in ("dense", "bm25", "hybrid")],
             f"{r['flat']['p50_ms']:.2f}", f"{r['modes']['hybrid']['p50_ms'] / r['flat']['p50_ms']:.1f}×",
             f"{r['ivf'][next(iter(r['ivf']))]['recall@10_vs_flat']:.3f}"] for r in d["rows"]]
    return [f"### Search latency ({name}: {_where(d)})", "", "p50 per query, query encoding excluded "
            f"({d['query_encoding']['p50_ms']:.1f} ms apart). Baseline: one flat FAISS dense search.", "",
            *_table(["chunks", "dense ms", "bm25 ms", "hybrid ms", "flat FAISS ms", "hybrid / flat",
                     "IVF recall@10 vs flat (smallest nprobe)"], rows)]


def reader(quick: bool) -> list[str]:
    name, d = _load("reader", quick)
    if not d:
        return ["_reader: not run_", ""]
    rows = [[str(r["passages"]), str(r["prompt_tokens"]), f"{r['full']['ttft_ms']:.0f}", f"{r['block']['ttft_ms']:.0f}",
             f"{r['ttft_speedup']:.1f}×"] for r in d["rows"]]
    return [f"### Reader time to first token ({name}: {_where(d)})", "", "Baseline: full prefill of every passage; "
            "Block-Attention reuses each passage's stored KV.", "",
            *_table(["passages", "prompt tokens", "full TTFT ms", "block TTFT ms", "speed-up"], rows)]


def long_context(quick: bool) -> list[str]:
    out = []
    name, d = _load("long_context", quick)
    if d and d.get("summary"):
        rows = [[k, f"{s['found']}/{s['n']}", f"{s['ttft_s']:.1f}", f"{s['ms_per_token']:.0f}"] for k, s in d["summary"].items()]
        out += [f"### Passkey ({name}: {_where(d)})", "", *_table(["backend@length", "found", "TTFT s", "ms/token"], rows)]
        recall = [r for r in d["key_recall"] if r["rep"] == "mean"]
        rows = []
        for r in recall:
            budget = min(r["budgets"], key=lambda b: abs(r["budgets"][b]["keys_read_share"] - 0.03))
            b = r["budgets"][budget]
            rows.append([r["kind"], f"{r['tokens']:,}", f"{budget} ({b['keys_read_share']:.1%})", f"{b['recall_mean']:.3f}",
                         f"{b['oracle_mean']:.3f}", f"{b['recall_mean'] / b['oracle_mean']:.2f}×"])
        out += ["Key recall at about 3% of keys. Baseline: the exact top keys of the same count (the best any "
                "selection of that size can do).", "",
                *_table(["backend", "tokens", "keys read", "recall", "exact top-k bound", "recall / bound"], rows)]
    name, d = _load("decode_speed", quick)
    if d:
        rows = [[f"{r['tokens']:,}", r["backend"], f"{r['ms_per_token']:.0f}",
                 f"{r['ms_per_token_vs_block']:.2f}×" if r.get("ms_per_token_vs_block") else "no block baseline (OOM)",
                 f"{r['keys_read_share']:.1%}"] for r in d["rows"] if r.get("ms_per_token")]
        out += [f"### Decode cost against context length ({name}: {_where(d)})", "", "Baseline: `block`, exact "
                "attention over every context key.", "",
                *_table(["tokens", "backend", "ms/token", "vs block", "keys read"], rows)]
    name, d = _load("gpu_decode", quick)
    if d:
        rows = [[r["shape"], f"{r['N']:,}", f"{r['full_sdpa_ms']:.3f}", f"{r['sparse_graph_ms']:.3f}",
                 f"{r['speedup_graph']:.1f}×"] for r in d["rows"]]
        out += [f"### GPU decode attention, one layer, one step ({name}: {_where(d)})", "", "Baseline: PyTorch SDPA "
                "over every key.", "", *_table(["shape", "tokens", "SDPA ms", "sparse ms", "speed-up"], rows)]
    return out or ["_long context: not run_", ""]


def qa(quick: bool) -> list[str]:
    from longdoc.evaluation.bootstrap import paired_difference
    from longdoc.evaluation.reports import load_results, short

    path = RESULTS / ("eval-quick.db" if quick else "eval.db")
    if not path.exists():
        return [f"_QA: {path.name} not run_", ""]
    files, summaries = load_results([path], resamples=2000)
    last = files[0].runs[-1]
    out = [f"### Question answering per backend ({path.name}: {last['started'][:10]}, "
           f"{last['hardware']['cpus']}-core {last['hardware']['machine']}, `{last['command']}`)", "",
           "Mean [95% bootstrap CI]. Baseline: `full` prefill; Δ F1 is the paired difference on the same questions.", ""]
    qa_cells = [s for s in summaries if s.cell.task == "qa"]
    for dataset in dict.fromkeys(s.cell.dataset for s in qa_cells):
        mine = [s for s in qa_cells if s.cell.dataset == dataset]
        base = next((s for s in mine if s.cell.attention == "full"), mine[0])
        rows = []
        for s in mine:
            d = paired_difference(base.values["f1"], s.values["f1"])
            rows.append([s.cell.attention, str(s.n), str(s.estimates["em"]), str(s.estimates["f1"]),
                         f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]", f"{s.mean('contains'):.3f}",
                         f"{s.mean('citation_precision'):.3f}", f"{s.median('ttft_ms'):.0f}",
                         f"{s.median('ttft_ms') / base.median('ttft_ms'):.2f}×", f"{s.mean('ms_per_token'):.0f}"])
        out += [f"{short(dataset)}, mode {mine[0].cell.mode}, k={mine[0].cell.k}:", "",
                *_table(["backend", "n", "EM", "F1", "Δ F1 vs full", "contains", "citation precision", "TTFT p50 ms",
                         "TTFT × full", "ms/token"], rows)]
    retrieval = [s for s in summaries if s.cell.task == "retrieval"]
    if retrieval:
        ks = sorted({int(m.split("@")[1]) for s in retrieval for m in s.values if m.startswith("recall@")})
        rows = [[short(s.cell.dataset), s.cell.mode, *[str(s.estimates[f"recall@{k}"]) for k in ks],
                 str(s.estimates["mrr@10"]), f"{s.median('latency_ms'):.1f}"] for s in retrieval]
        out += ["Retrieval in the same run:", "",
                *_table(["dataset", "mode", *[f"recall@{k}" for k in ks], "MRR@10", "p50 ms"], rows)]
    return out


def serve(quick: bool) -> list[str]:
    name, d = _load("serve_load", quick)
    if not d:
        return ["_service load: not run_", ""]
    rows = [[route, str(d[route]["n"]), f"{d[route]['p50_ms']:.1f}", f"{d[route]['p95_ms']:.1f}", f"{d[route]['p99_ms']:.1f}"]
            for route in ("baseline_search", "search", "ask", "upload") if d[route]["n"]]
    return [f"### Service under load ({name}: {_where(d)})", "",
            f"{d['clients']} clients x {d['requests_per_client']} requests (one in ten an ask) on loopback while "
            f"{d['uploads']} essays were uploaded and indexed. Baseline: the same server, one client, before the load. "
            f"Search p50 under load {d['search_p50_vs_baseline']:.2f}× the baseline; {len(d['errors'])} errors, "
            f"{len(d['failed_jobs'])} failed jobs, {len(d['lost_documents'])} lost documents.", "",
            *_table(["route", "n", "p50 ms", "p95 ms", "p99 ms"], rows)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    lines = ["# Benchmark summary" + (" (quick)" if args.quick else ""), "",
             "Every figure is measured against a baseline in the same run; each section names its date, hardware "
             "and command. Regenerate with `make bench" + ("-quick`." if args.quick else "`."), ""]
    for section in (peers, qa, indexing, search, reader, long_context, serve):
        lines += section(args.quick)
    out = RESULTS / "SUMMARY.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
