"""`longdoc eval report RESULTS...`: Markdown and HTML with PNG plots from one or more results files.

Every mean carries its 95% bootstrap interval; the comparison table gives each config's paired
difference from the first of its group (same dataset and cell, same questions), so a gap can be read
as real or as noise."""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LongdocError
from . import plots
from .bootstrap import Estimate, bootstrap_ci, paired_difference
from .results_db import Cell, ResultsDB

# answer_in_context: whether the windows the reader read hold a gold answer (the retrieval table's column
# is over the chunks that were found, before they are widened)
QA_METRICS = ("em", "f1", "contains", "answer_in_context", "citation_precision", "abstained")


@dataclass
class Summary:
    run: str  # the results file's label
    cell: Cell
    values: dict[str, dict[str, float | None]]  # metric -> question -> value
    details: dict[str, dict]
    estimates: dict[str, Estimate] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.details)

    def _known(self, metric: str) -> list[float]:
        return [v for v in self.values.get(metric, {}).values() if v is not None]

    def mean(self, metric: str) -> float:
        e = self.estimates.get(metric)
        return e.mean if e is not None and e.n else math.nan

    def median(self, metric: str) -> float:
        vals = self._known(metric)
        return float(np.median(vals)) if vals else math.nan

    def p95(self, metric: str) -> float:
        vals = self._known(metric)
        return float(np.quantile(vals, 0.95)) if vals else math.nan

    def peak(self, metric: str) -> float:
        vals = self._known(metric)
        return max(vals) if vals else math.nan


@dataclass
class RunFile:
    label: str
    path: Path
    runs: list[dict]
    datasets: dict[str, dict]


def load_results(paths: list[str | Path], resamples: int = 2000, seed: int = 0) -> tuple[list[RunFile], list[Summary]]:
    files, summaries, labels = [], [], set()
    for path in map(Path, paths):
        if not path.is_file():
            raise LongdocError(f"{path}: no such results file")
        with ResultsDB(path) as db:
            runs = db.runs()
            if not runs:
                raise LongdocError(f"{path}: not a longdoc results file (no runs recorded)")
            label = runs[-1]["config"].get("name") or path.stem
            while label in labels:
                label += "'"
            labels.add(label)
            files.append(RunFile(label, path, runs, db.dataset_info()))
            for cell in db.cells():
                rows = db.rows(cell)
                values: dict[str, dict] = {}
                for qid, row in rows.items():
                    for metric, v in row["metrics"].items():
                        values.setdefault(metric, {})[qid] = v
                s = Summary(label, cell, values, {q: r["detail"] for q, r in rows.items()})
                s.estimates = {m: bootstrap_ci(list(v.values()), resamples, seed=seed) for m, v in values.items()}
                summaries.append(s)
    return files, summaries


def _ci(e: Estimate | None) -> str:
    if e is None or e.n == 0:
        return "–"
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]"


def _num(v: float, digits: int = 0) -> str:
    return "–" if v is None or v != v else f"{v:,.{digits}f}"


def short(dataset: str) -> str:
    """A dataset named by a path, shortened to its file name for tables and plots."""
    kind, sep, path = dataset.partition(":")
    return f"{kind}:{Path(path).name}" if sep else dataset


def _k_of(metric: str) -> int:
    return int(metric.partition("@")[2])


def _tables(files: list[RunFile], summaries: list[Summary], resamples: int) -> list[tuple[str, list[str], list[list[str]]]]:
    multi = len(files) > 1
    who = (lambda s: [s.run]) if multi else (lambda s: [])
    head = ["run"] if multi else []
    tables = []
    rows = []
    for f in files:
        last = f.runs[-1]
        hw = last["hardware"]
        rows.append([f.label, f.path.name, f"{len(f.runs)} ({f.runs[0]['started'][:16]} → {last['started'][:16]})",
                     (last.get("git_commit") or "–")[:10], f"{hw.get('cpus')} CPUs" + (f", {hw['gpu']}" if hw.get("gpu") else ""),
                     ", ".join(f"{k} {v}" for k, v in last["versions"].items() if v and k in ("longdoc", "torch", "transformers")),
                     f"`{last['command']}`"])
    tables.append(("Runs", ["label", "file", "invocations", "commit", "hardware", "versions", "last command"], rows))
    rows = [[f.label, short(d), _num(i.get("documents")), _num(i.get("chunks")), _num(i.get("questions")),
             _num(i.get("index_seconds"), 1)] for f in files for d, i in f.datasets.items()]
    if rows:
        tables.append(("Datasets", ["run", "dataset", "documents", "chunks", "questions", "index build s"], rows))

    retrieval = [s for s in summaries if s.cell.task == "retrieval"]
    if retrieval:
        ks = sorted({_k_of(m) for s in retrieval for m in s.values if m.startswith("recall@")})
        rows = [[*who(s), short(s.cell.dataset), s.cell.mode, str(s.n), *[_ci(s.estimates.get(f"recall@{k}")) for k in ks],
                 _ci(s.estimates.get("mrr@10")), _ci(s.estimates.get("ndcg@10")),
                 _ci(s.estimates.get(f"answer_in_context@{ks[-1]}")),
                 _num(s.median("latency_ms"), 1), _num(s.p95("latency_ms"), 1)] for s in retrieval]
        tables.append(("Retrieval (mean [95% CI])", [*head, "dataset", "mode", "n", *[f"recall@{k}" for k in ks], "MRR@10",
                                                     "nDCG@10", f"answer in found chunks@{ks[-1]}", "p50 ms", "p95 ms"], rows))
    qa = [s for s in summaries if s.cell.task == "qa"]
    if qa:
        rows = [[*who(s), short(s.cell.dataset), s.cell.mode, str(s.cell.k), s.cell.attention, str(s.n),
                 *[_ci(s.estimates.get(m)) for m in QA_METRICS], _num(s.median("ttft_ms")),
                 _num(s.median("ms_per_token")),
                 _num(s.peak("peak_rss_mb"))] for s in qa]
        tables.append(("Question answering (mean [95% CI])",
                       [*head, "dataset", "mode", "k", "attention", "n", "EM", "F1", "contains", "answer in context",
                        "citation precision", "abstained", "TTFT p50 ms", "ms/token p50", "peak RSS MB"], rows))
    needle = [s for s in summaries if s.cell.task == "needle"]
    if needle:
        rows = [[*who(s), s.cell.attention, str(s.cell.k), str(s.n), _ci(s.estimates.get("found")),
                 _num(s.median("prompt_tokens")), _num(s.median("ttft_ms")),
                 _num(s.mean("ms_per_token"))] for s in needle]
        tables.append(("Needle in a haystack (passkey found, mean [95% CI] over depths)",
                       [*head, "attention", "length", "depths", "found", "prompt tokens", "TTFT p50 ms", "ms/token"], rows))
    rows = _comparisons(summaries, resamples)
    if rows:
        tables.append(("Comparison: paired difference from the first config of each group (same questions)",
                       ["group", "baseline", "config", "metric", "baseline mean", "config mean", "Δ [95% CI]",
                        "verdict"], rows))
    return tables


def _headline(s: Summary) -> list[str]:
    if s.cell.task == "retrieval":
        recalls = sorted((m for m in s.values if m.startswith("recall@")), key=_k_of)
        return [next((m for m in recalls if _k_of(m) >= 5), recalls[-1]), "mrr@10"] if recalls else ["mrr@10"]
    return ["f1", "em"] if s.cell.task == "qa" else ["found"]


def _comparisons(summaries: list[Summary], resamples: int) -> list[list[str]]:
    groups: dict[tuple, list[Summary]] = {}
    for s in summaries:
        c = s.cell
        key = (c.dataset, c.task, c.k) if c.task != "qa" else (c.dataset, c.task, c.mode, c.k)
        groups.setdefault(key, []).append(s)
    rows = []
    for key, members in groups.items():
        base = members[0]
        name = lambda s: " · ".join(x for x in (s.run, s.cell.mode if s.cell.mode != "-" else "",  # noqa: E731
                                               s.cell.attention if s.cell.attention != "-" else "") if x)
        group = " · ".join(dict.fromkeys(short(str(x)) for x in key if x not in ("-", 0)))
        for other in members[1:]:
            for metric in _headline(base):
                if metric not in base.values or metric not in other.values:
                    continue
                d = paired_difference(base.values[metric], other.values[metric], resamples)
                if d.n == 0:
                    continue
                verdict = "better" if d.low > 0 else "worse" if d.high < 0 else "no clear difference"
                rows.append([group, name(base), name(other), metric, f"{base.estimates[metric].mean:.3f}",
                             f"{other.estimates[metric].mean:.3f}", f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]",
                             verdict])
    return rows


def _plots(summaries: list[Summary], out: Path, multi: bool) -> list[tuple[str, str]]:
    images = []
    label = (lambda s, x: f"{s.run} · {x}") if multi else (lambda s, x: x)
    retrieval = [s for s in summaries if s.cell.task == "retrieval"]
    if retrieval:
        panels: dict[str, dict] = {}
        for s in retrieval:
            points = [(_k_of(m), e.mean, e.low, e.high) for m, e in s.estimates.items() if m.startswith("recall@")]
            panels.setdefault(short(s.cell.dataset), {})[label(s, s.cell.mode)] = points
        images.append(("Recall@k per mode", plots.recall_curves(panels, out / "recall_at_k.png").name))
    qa = [s for s in summaries if s.cell.task == "qa"]
    for n, dataset in enumerate(dict.fromkeys(s.cell.dataset for s in qa)):
        mine = [s for s in qa if s.cell.dataset == dataset]
        several = len({(s.cell.mode, s.cell.k) for s in mine}) > 1
        groups = {label(s, s.cell.attention + (f" ({s.cell.mode}, k={s.cell.k})" if several else "")):
                  {m: (s.estimates[m].mean, s.estimates[m].low, s.estimates[m].high) for m in ("em", "f1", "contains")}
                  for s in mine}
        png = plots.metric_bars(groups, out / f"qa_{n}.png", f"{short(dataset)}: EM, F1 and contains per backend "
                                                                f"({mine[0].n} questions)")
        images.append((f"QA scores on {short(dataset)}", png.name))
    needle = [s for s in summaries if s.cell.task == "needle"]
    if needle:
        panels = {}
        for s in needle:
            cells = panels.setdefault(label(s, s.cell.attention), {})
            for qid, detail in s.details.items():
                cells[(detail["depth"], s.cell.k)] = s.values["found"][qid]
        images.append(("Needle: depth × length", plots.needle_heatmap(panels, out / "needle_heatmap.png",
                                                                      "Passkey found, per depth and context length").name))
    latency = {"retrieval latency (ms)": {label(s, s.cell.mode): list(s.values.get("latency_ms", {}).values())
                                          for s in retrieval},
               "time to first token (ms)": {label(s, f"{s.cell.attention} k={s.cell.k}"):
                                            list(s.values.get("ttft_ms", {}).values()) for s in qa + needle},
               "decode (ms per token)": {label(s, f"{s.cell.attention} k={s.cell.k}"):
                                         list(s.values.get("ms_per_token", {}).values()) for s in qa + needle}}
    latency = {t: series for t, series in latency.items() if any(v for v in series.values())}
    if latency:
        images.append(("Latency", plots.latency_histograms(latency, out / "latency.png").name))
    return images


def write_report(paths: list[str | Path], out: str | Path, resamples: int = 2000) -> dict[str, Path]:
    """Write report.md, report.html and the PNGs into `out`; returns their paths."""
    files, summaries = load_results(paths, resamples)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = _tables(files, summaries, resamples)
    images = _plots(summaries, out, len(files) > 1)
    title = "longdoc evaluation: " + ", ".join(f.label for f in files)
    md = [f"# {title}", ""]
    for heading, header, rows in tables:
        md += [f"## {heading}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        md.append("")
    md += ["## Plots", ""] + [f"### {caption}\n\n![{caption}]({name})\n" for caption, name in images]
    (out / "report.md").write_text("\n".join(md))
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, header, rows in tables:
        body.append(f"<h2>{html.escape(heading)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                    + "</tr>" + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip('`'))}</td>" for c in row) + "</tr>"
                                        for row in rows) + "</table>")
    body += [f"<h2>{html.escape(c)}</h2><img src='{html.escape(n)}' alt='{html.escape(c)}'>" for c, n in images]
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
             "font-size:13px;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    (out / "report.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                                     f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    (out / "summary.json").write_text(json.dumps(
        [{"run": s.run, **s.cell.__dict__, "n": s.n,
          "metrics": {m: e.__dict__ for m, e in s.estimates.items()}} for s in summaries], indent=1) + "\n")
    return {"markdown": out / "report.md", "html": out / "report.html",
            **{name: out / name for _, name in images}}
