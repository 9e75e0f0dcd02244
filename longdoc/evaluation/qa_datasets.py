"""QA datasets as RetrievalDatasets (corpus, questions, gold passages, gold answers).

From the bigbench sdist: DROP and minute_mysteries_qa (Quoref is in datasets.py). Standard formats read
from files: SQuAD v1/v2 JSON, HotpotQA JSON, NQ-open jsonl, FlashRAG jsonl and LongBench jsonl. Formats that
carry no passages (NQ-open, FlashRAG without its corpus file) give an empty corpus: evaluate them against an
index you built (`--index`)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from ..errors import LongdocError
from .datasets import RetrievalDataset, quoref_from_examples


def _read_json(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LongdocError(f"{path}: cannot read {what} JSON: {e}") from None


def _read_jsonl(path: Path, what: str) -> list[dict]:
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LongdocError(f"{path}: cannot read {what} jsonl: {e}") from None
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise LongdocError(f"{path}:{n}: not a JSON line: {e}") from None
    return rows


def _need(row: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise LongdocError(f"{where}: missing field(s) {', '.join(missing)}")


class _Corpus:
    """Documents deduplicated by text, with stable ids."""

    def __init__(self, prefix: str = "d"):
        self.docs: dict[str, dict] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self.prefix = prefix

    def add(self, text: str, title: str = "") -> str:
        key = (title, text)
        if key not in self._ids:
            self._ids[key] = f"{self.prefix}{len(self._ids):05d}"
            self.docs[self._ids[key]] = {"title": title, "text": text}
        return self._ids[key]


def _strip_answer(a) -> str:
    return str(a).strip().removesuffix(".")  # natural-instructions targets end with a full stop: "3."


def drop_from_examples(examples: list[dict], name: str = "drop") -> RetrievalDataset:
    """natural-instructions DROP: 'Passage: ... Question: ... Answer type: ...', target "['3.']"."""
    rewritten = []
    for n, ex in enumerate(examples):
        text = ex["input"].split("\nAnswer type:")[0]
        target = ex["target"]
        try:
            answers = ast.literal_eval(target) if isinstance(target, str) and target.startswith("[") else target
        except (ValueError, SyntaxError):
            raise LongdocError(f"{name}: example {n} has an unreadable target {target!r}") from None
        answers = answers if isinstance(answers, list) else [answers]
        rewritten.append({"input": text, "target": [_strip_answer(a) for a in answers]})
    return quoref_from_examples(rewritten, name)


def mysteries_from_examples(examples: list[dict], name: str = "minute-mysteries") -> RetrievalDataset:
    """minute_mysteries_qa: a story ending with its questions; the target is a long-form explanation."""
    corpus = _Corpus("s")
    queries, qrels, answers = {}, {}, {}
    for n, ex in enumerate(examples):
        story = ex["input"].strip()
        sentences = re.split(r"(?<=[.!?])\s+", story)
        tail = []
        while sentences and sentences[-1].endswith("?"):
            tail.insert(0, sentences.pop())
        if not tail or not sentences:
            raise LongdocError(f"{name}: example {n} does not end with its questions")
        qid = f"q{n}"
        doc = corpus.add(" ".join(sentences), title=ex.get("comment", ""))
        queries[qid] = " ".join(tail)
        qrels[qid] = {doc: 1}
        answers[qid] = [ex["target"].strip()]
    return RetrievalDataset(name, corpus.docs, queries, qrels, answers)


def load_squad(path: str | Path) -> RetrievalDataset:
    """SQuAD v1.1 / v2.0 JSON. v2's unanswerable questions get no gold answer: abstaining is right."""
    data = _read_json(path, "SQuAD")
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise LongdocError(f"{path}: not SQuAD JSON (no top-level 'data' list)")
    corpus = _Corpus("p")
    queries, qrels, answers = {}, {}, {}
    for article in data["data"]:
        for para in article.get("paragraphs", []):
            _need(para, ("context", "qas"), f"{path}: paragraph in {article.get('title', '?')!r}")
            doc = corpus.add(para["context"], article.get("title", ""))
            for qa in para["qas"]:
                _need(qa, ("id", "question"), f"{path}: question")
                qid = str(qa["id"])
                queries[qid] = qa["question"]
                qrels[qid] = {doc: 1}
                answers[qid] = [] if qa.get("is_impossible") else list(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
    return RetrievalDataset(f"squad-{Path(path).stem}", corpus.docs, queries, qrels, answers)


def load_hotpotqa(path: str | Path) -> RetrievalDataset:
    """HotpotQA JSON (distractor setting): each context paragraph is a document; the gold passages are
    the paragraphs holding the supporting facts."""
    data = _read_json(path, "HotpotQA")
    if not isinstance(data, list):
        raise LongdocError(f"{path}: HotpotQA JSON is a list of questions")
    corpus = _Corpus("h")
    queries, qrels, answers = {}, {}, {}
    for n, row in enumerate(data):
        _need(row, ("_id", "question", "answer", "context"), f"{path}: question {n}")
        ids = {}
        for title, sentences in row["context"]:
            ids[title] = corpus.add("".join(sentences).strip(), title)
        support = {t for t, _ in row.get("supporting_facts", [])} or set(ids)
        qid = str(row["_id"])
        queries[qid] = row["question"]
        qrels[qid] = {ids[t]: 1 for t in support if t in ids}
        answers[qid] = [row["answer"]]
    return RetrievalDataset(f"hotpotqa-{Path(path).stem}", corpus.docs, queries, qrels, answers)


def load_nq_open(path: str | Path) -> RetrievalDataset:
    """NQ-open jsonl: {"question", "answer": [...]}. No passages: evaluate against your own index."""
    queries, answers = {}, {}
    for n, row in enumerate(_read_jsonl(path, "NQ-open")):
        _need(row, ("question", "answer"), f"{path}:{n + 1}")
        qid = f"nq{n}"
        queries[qid] = row["question"]
        answers[qid] = list(row["answer"]) if isinstance(row["answer"], list) else [row["answer"]]
    return RetrievalDataset(f"nq-open-{Path(path).stem}", {}, queries, {q: {} for q in queries}, answers)


def load_flashrag(path: str | Path, corpus_path: str | Path | None = None) -> RetrievalDataset:
    """FlashRAG jsonl: {"id", "question", "golden_answers": [...]}; passages come from a FlashRAG corpus
    jsonl ({"id", "contents": "title\\ntext"}) when given, next to it as corpus.jsonl, else none."""
    queries, answers = {}, {}
    for n, row in enumerate(_read_jsonl(path, "FlashRAG")):
        _need(row, ("id", "question", "golden_answers"), f"{path}:{n + 1}")
        qid = str(row["id"])
        queries[qid] = row["question"]
        answers[qid] = list(row["golden_answers"])
    corpus = {}
    corpus_path = Path(corpus_path) if corpus_path else Path(path).with_name("corpus.jsonl")
    if corpus_path.exists():
        for n, row in enumerate(_read_jsonl(corpus_path, "FlashRAG corpus")):
            _need(row, ("id", "contents"), f"{corpus_path}:{n + 1}")
            title, _, text = row["contents"].partition("\n")
            corpus[str(row["id"])] = {"title": title.strip('"'), "text": text or title}
    return RetrievalDataset(f"flashrag-{Path(path).stem}", corpus, queries, {q: {} for q in queries}, answers)


def load_longbench(path: str | Path) -> RetrievalDataset:
    """LongBench jsonl: {"_id", "input" (the question), "context" (a long document), "answers": [...]}.
    Each context is a document, and each question's gold passage is its own document."""
    corpus = _Corpus("l")
    queries, qrels, answers = {}, {}, {}
    for n, row in enumerate(_read_jsonl(path, "LongBench")):
        _need(row, ("_id", "input", "context", "answers"), f"{path}:{n + 1}")
        qid = str(row["_id"])
        queries[qid] = row["input"]
        qrels[qid] = {corpus.add(row["context"], row.get("dataset", "")): 1}
        answers[qid] = list(row["answers"])
    return RetrievalDataset(f"longbench-{Path(path).stem}", corpus.docs, queries, qrels, answers)


PYTHON_DOCS_QA = Path(__file__).resolve().parents[2] / "bench" / "data" / "python_docs_qa.jsonl"


def load_python_docs_qa(path: str | Path = PYTHON_DOCS_QA, docs_root: str | Path | None = None) -> RetrievalDataset:
    """Long-document QA over the Python 3.11 manual: questions written for longdoc (bench/data), each
    with answers and its source file. The corpus is every reStructuredText source of the manual, one
    document per file, fetched with `corpus_path("python-docs")`. A doc id is the file's path under
    _sources with dots for slashes ("library.functools"), so corpus files stay in one folder."""
    from .corpora import corpus_path

    root = Path(docs_root) if docs_root is not None else corpus_path("python-docs")
    doc_id = lambda source: source.removesuffix(".rst.txt").replace("/", ".")  # noqa: E731
    corpus = {doc_id(str(p.relative_to(root))): {"title": p.name.removesuffix(".rst.txt"),
                                                 "text": p.read_text(errors="replace")}
              for p in sorted(root.rglob("*.rst.txt"))}
    queries, qrels, answers, evidence = {}, {}, {}, {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        row = json.loads(line)
        _need(row, ("id", "question", "answers", "source"), f"{path}: line {n}")
        if doc_id(row["source"]) not in corpus:
            raise LongdocError(f"{path}: line {n}: source {row['source']!r} is not in {root}")
        queries[row["id"]] = row["question"]
        qrels[row["id"]] = {doc_id(row["source"]): 1}
        answers[row["id"]] = list(row["answers"])
        evidence[row["id"]] = row.get("evidence", "")
    return RetrievalDataset("python-docs-qa", corpus, queries, qrels, answers, evidence=evidence)


ESSAY_PARAPHRASE = PYTHON_DOCS_QA.with_name("essay_paraphrase.jsonl")


def load_essay_paraphrase(path: str | Path = ESSAY_PARAPHRASE, essays_root: str | Path | None = None) -> RetrievalDataset:
    """Questions that share no content word with the passage that answers them (bench/data): fictional
    facts ("needles") planted as paragraphs in the 49 Paul Graham essays, each asked in other words. The
    gold document is the essay holding the needle; `evidence` is the needle. Needle i goes into essay
    i mod 49 (by name) at a spread-out paragraph, so the corpus is the same on every machine."""
    from .corpora import corpus_path

    root = Path(essays_root) if essays_root is not None else corpus_path("paul-graham-essays")
    paragraphs = {p.stem: p.read_text(errors="replace").split("\n\n") for p in sorted(root.glob("*.txt"))}
    names = sorted(paragraphs)
    queries, qrels, answers, evidence = {}, {}, {}, {}
    for n, line in enumerate(Path(path).read_text().splitlines()):
        row = json.loads(line)
        _need(row, ("id", "needle", "question", "answers"), f"{path}: line {n + 1}")
        essay = paragraphs[names[n % len(names)]]
        essay.insert(1 + int((len(essay) - 1) * ((n * 0.618034) % 1)), row["needle"])
        queries[row["id"]], answers[row["id"]], evidence[row["id"]] = row["question"], list(row["answers"]), row["needle"]
        qrels[row["id"]] = {names[n % len(names)]: 1}
    corpus = {name: {"title": name, "text": "\n\n".join(paragraphs[name])} for name in names}
    return RetrievalDataset("essay-paraphrase", corpus, queries, qrels, answers, evidence=evidence)
