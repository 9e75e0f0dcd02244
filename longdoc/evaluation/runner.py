"""`longdoc eval run`: the grid dataset x retrieval mode x attention backend x k, scored per question
into a results file (results_db), resumable: a re-run skips every question already stored, so a killed
run picks up where it stopped and ends with the same rows it would have had.

Retrieval is scored per mode with its own search (so each mode's latency is its own); QA answers from
`Index.search` + `Index.answer_hits`, exactly what `longdoc ask` does. Answers decode greedily and the
needle's pass keys are seeded per (length, depth), so a question's result does not depend on what ran
before it."""
from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import LongdocError
from .memory import PeakRSS
from .registry import load_dataset, write_corpus
from .record import run_record
from .results_db import Cell, ResultsDB
from .run_config import DatasetSpec, EvalConfig, parse_backend
from .scoring import score_answer, score_ranking


def safe_name(name: str) -> str:
    """A file-name-safe form of a dataset name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_eval(config: EvalConfig, results: str | Path, argv: list[str] | None = None, progress: bool = True) -> dict:
    """Run (or finish) the grid; returns {"run_id", "scored": rows added now, "skipped": rows already there}."""
    seed_everything(config.seed)
    with ResultsDB(results) as db:
        settings = dataclasses.asdict(config.settings)
        db.claim(config.fingerprints(), f"reader {settings['reader']}, embedder {settings['embedder']}, "
                                       f"seed {config.seed}, retrieval k {list(config.ks)}")
        run_id = db.start_run(run_record(argv or ["longdoc", "eval", "run"]), dataclasses.asdict(config))
        counts = {"run_id": run_id, "scored": 0, "skipped": 0}
        for spec in config.datasets:
            _run_dataset(db, run_id, config, spec, progress, counts)
        if config.needle:
            _run_needle(db, run_id, config, progress, counts)
        db.finish_run(run_id)
    return counts


def _bar(progress: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not progress, transient=True)


def _todo(db: ResultsDB, cells: list[Cell], qids: list[str], counts: dict) -> dict[Cell, set[str]]:
    todo = {}
    for cell in cells:
        done = db.done(cell)
        todo[cell] = {q for q in qids if q not in done}
        counts["skipped"] += len(qids) - len(todo[cell])
    return todo


def _index_settings(config: EvalConfig):
    """The config's settings, with head vectors stored when a mode it scores uses them."""
    modes = set(config.modes) | set(config.qa_modes)
    wanted = "multihead" in modes or ("hybrid" in modes and config.settings.search.weight_multihead > 0)
    return config.settings.replace(head_vectors=True) if wanted else config.settings


def _run_dataset(db: ResultsDB, run_id: int, config: EvalConfig, spec: DatasetSpec, progress: bool, counts: dict):
    from .. import index_paths, open_index
    from ..models.cache import cache_dir

    data = load_dataset(spec.name, spec.limit, config.seed)
    qids = list(data.queries)
    retrieval = [Cell(spec.name, "retrieval", m) for m in config.modes]
    qa = [Cell(spec.name, "qa", m, a, k) for m in config.qa_modes for k in config.qa_ks for a in config.attention]
    todo = _todo(db, retrieval + qa, qids, counts)
    total = sum(len(v) for v in todo.values())
    if not total:
        return
    index_dir = Path(spec.index) if spec.index else None
    if index_dir is None:
        if not data.corpus:
            raise LongdocError(f"dataset {spec.name} has no passages: give it an index built over your corpus "
                               f"(datasets = [{{name = \"{spec.name}\", index = \"DIR\"}}] or --index)")
        workdir = config.workdir or cache_dir("eval", safe_name(data.corpus_name))
        index_dir = workdir / "index"
        t0 = time.perf_counter()
        report = index_paths(index_dir, [write_corpus(data, workdir / "corpus")], _index_settings(config), prune=True,
                             progress=progress)
        if report.chunks_embedded:  # build time only means something when the index was built now
            db.set_dataset_info(spec.name, run_id, {"documents": len(data.corpus), "index_seconds":
                                                    round(time.perf_counter() - t0, 1),
                                                    "chunks_embedded": report.chunks_embedded})
    with open_index(index_dir, settings=config.settings) as ix, _bar(progress) as bar:
        task = bar.add_task(f"{spec.name}", total=total)
        info = {"documents": len(data.corpus), "questions": len(qids), "chunks": ix.catalog.counts()["chunks"],
                "index": str(index_dir)}
        db.set_dataset_info(spec.name, run_id, {**db.dataset_info().get(spec.name, {}), **info})
        k_max = max(max(config.ks), 10)
        for qid in qids:
            question, qrels, answers = data.queries[qid], data.qrels.get(qid, {}), data.answers.get(qid, [])
            for cell in retrieval:
                if qid in todo[cell]:
                    t = time.perf_counter()
                    hits = ix.search(question, k=k_max, mode=cell.mode, per="document")
                    metrics = {**score_ranking(hits, qrels, answers, config.ks),
                               "latency_ms": 1000 * (time.perf_counter() - t)}
                    db.add(cell, qid, run_id, metrics, {"ranking": [Path(h.path).stem for h in hits]})
                    _advance(bar, task, counts)
        jobs = [(qid, data.queries[qid], data.answers.get(qid, []), sorted(data.qrels.get(qid, {})), cells)
                for qid in qids for mode in config.qa_modes for k in config.qa_ks
                if (cells := [c for c in qa if c.mode == mode and c.k == k and qid in todo[c]])]
        if config.ray and jobs:
            from ..distributed.evaluation import answer_on_ray

            answered = answer_on_ray(config.ray, index_dir, config.settings, jobs)
        else:
            answered = (answer_cells(ix, *job[1:]) for job in jobs)
        for (qid, *_), rows in zip(jobs, answered):
            for cell, metrics, detail in rows:
                db.add(cell, qid, run_id, metrics, detail)
                _advance(bar, task, counts)


def answer_cells(ix, question: str, golds: list[str], gold_docs: list[str], cells: list[Cell]) -> list[tuple]:
    """One question's QA cells (one mode and k, several backends): retrieve as `ask` does, answer with
    each backend, score. [(cell, metrics, detail)]. Runs here, or in a Ray actor holding a reader."""
    t = time.perf_counter()
    hits = ix.search(question, k=cells[0].k, mode=cells[0].mode)
    retrieve_s = time.perf_counter() - t
    rows = []
    for cell in cells:
        attention, recompute, reencode, focus = parse_backend(cell.attention)
        if attention != "full":  # Block-Attention's premise: passage KV was stored at index time, untimed
            ix.reader.fill_kv(ix.reading_passages(hits))
        with PeakRSS() as memory:
            answer = ix.answer_hits(question, hits, attention, recompute, None, timings={"retrieve_s": retrieve_s},
                                   reencode_first=reencode, reencode_focus=focus)
        metrics, detail = score_answer(answer, golds, set(gold_docs))
        metrics.update(retrieval_ms=1000 * retrieve_s, peak_rss_mb=memory.peak / 2**20)
        detail["retrieved"] = [Path(h.path).stem for h in hits]
        rows.append((cell, metrics, detail))
    return rows


def _advance(bar: Progress, task, counts: dict) -> None:
    counts["scored"] += 1
    bar.advance(task)


def _run_needle(db: ResultsDB, run_id: int, config: EvalConfig, progress: bool, counts: dict) -> None:
    """The passkey grid: k is the haystack length in reader tokens, the question id the depth."""
    from ..models.cache import cache_dir
    from ..reader import Reader
    from . import needle
    from .corpora import corpus_path

    spec = config.needle
    qids = [f"depth={d:.2f}" for d in spec.depths]
    cells = [Cell("needle", "needle", "-", a, n) for n in spec.lengths for a in spec.attention]
    todo = _todo(db, cells, qids, counts)
    total = sum(len(v) for v in todo.values())
    if not total:
        return
    settings = config.settings
    reader = Reader(settings.reader, (config.workdir or cache_dir("eval")) / "needle-kv", settings.answer,
                    settings.device)
    tok = reader.model.tokenizer
    hay = needle.build_haystack(tok, needle.essay_sentences(corpus_path("paul-graham-essays")), max(spec.lengths))
    tokens = [len(tok(" " + p, add_special_tokens=False)["input_ids"]) for p in hay.passages]
    with _bar(progress) as bar:
        task = bar.add_task("needle: reader KV", total=len(hay.passages))
        reader.fill_kv(needle.passage_hits(hay.passages), lambda n: bar.advance(task, n))
        bar.update(task, description="needle", completed=0, total=total)
        for length in spec.lengths:
            base = needle.haystack_prefix(hay, tokens, length)
            for depth, qid in zip(spec.depths, qids):
                cells_now = [c for c in cells if c.k == length and qid in todo[c]]
                if not cells_now:
                    continue
                key = needle.pass_key(random.Random(f"{config.seed}:{length}:{depth}"))
                texts, where = needle.insert_needle(base, depth, key)
                hits = needle.passage_hits(texts)
                for cell in cells_now:
                    attention, recompute, reencode, focus = parse_backend(cell.attention)
                    with PeakRSS() as memory:
                        a = reader.answer(needle.QUESTION, hits, attention, recompute, max_new_tokens=12, in_order=True,
                                          reencode_first=reencode, reencode_focus=focus)
                    t = a.timings
                    metrics = {"found": float(needle.found(a.raw, key)), "ttft_ms": 1000 * t["ttft_s"],
                               "ms_per_token": t.get("ms_per_token"), "prompt_tokens": t.get("prompt_tokens"),
                               "keys_read_share": t.get("keys_read_share"), "peak_rss_mb": memory.peak / 2**20}
                    db.add(cell, qid, run_id, metrics, {"depth": depth, "key": key, "prediction": a.raw,
                                                        "needle_passage": where})
                    _advance(bar, task, counts)
