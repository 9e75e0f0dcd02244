"""One typed settings object: defaults < TOML file < LONGDOC_* environment < explicit overrides.

The defaults were picked by measurement (see bench/chunk_size.py and the README).
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import LongdocError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
# The best packaged reader that meets issue 13's CPU bar (block TTFT <= 1.5 s and <= 150 ms/token with its KV
# stored; README "Readers"). The 0.5B and SmolLM2 stay available by name for smaller machines.
DEFAULT_READER = "qwen2.5-coder-1.5b-instruct"
# The reader's attention backends; auto is block while the context fits (exact_up_to), long_attention beyond.
ATTENTIONS = ("auto", "full", "block", "landmark", "retrieval", "scan")
SPARSE_ATTENTIONS = ("landmark", "retrieval")  # long context: sparse attention over a context memory
# Long context: sparse attention, or scan (reader/scan.py: segment by segment, the sentences the question
# attends to most, then read exactly)
LONG_ATTENTIONS = SPARSE_ATTENTIONS + ("scan",)
# The reader's system turn. bench/dev_sweep.py, Quoref dev split (block, k=5), 0.5B reader, 40 questions:
# F1 0.126 with the first one ("Answer the question from the passages with a name, number or short
# phrase."), 0.167 asking for only a phrase copied from the passages, 0.176 with this one, which also
# lets how and why questions (the demo's, a manual's) be answered in a sentence.
DEFAULT_INSTRUCTION = ("Answer the question from the passages. If it asks who, what, which, when or how many, reply "
                       "with only the name, number or short phrase from the passages; if it asks how or why, reply "
                       "with one short sentence.")
PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")  # the reader's weights


@dataclass(frozen=True)
class ChunkSettings:
    # bench/chunk_size.py: 5 needles in 49 essays are all found at dense rank 1 with 64-token chunks,
    # 2 of 5 with 128 and none with 254, at the same indexing cost.
    tokens: int = 64
    overlap: int = 8

    def __post_init__(self):
        if self.tokens < 16:
            raise LongdocError(f"chunk tokens must be at least 16, got {self.tokens}")
        if not 0 <= self.overlap < self.tokens // 2:
            raise LongdocError(f"chunk overlap must be in [0, tokens/2), got {self.overlap}")


@dataclass(frozen=True)
class SearchSettings:
    mode: str = "hybrid"
    # Reciprocal-rank fusion: score = sum over modes of weight / (rrf_k + rank), where a BM25 hit takes
    # part only if it scores at least bm25_min_terms query terms' worth (a term's full BM25 weight,
    # averaged over the query's terms: TextIndex.term_weight; 0 lets every hit in). Chosen together on a
    # dev split mixing Quoref (questions copy the passage's words), essay-paraphrase (they share none)
    # and MRAG Wikipedia (bench/fusion_weights.py). Without the floor, BM25's hits on a paraphrased
    # question (chunks sharing a common word with it) outranked dense's right one whenever BM25 led, and
    # giving dense the lead cost the lexical questions 0.14 MRR@10. Multi-head votes earned no weight on
    # that mixed split, so hybrid skips them for a query searched whole unless weight_multihead is raised
    # (for one searched by its sentences: weight_multihead_aspects, below).
    rrf_k: int = 10
    weight_dense: float = 0.25
    weight_multihead: float = 0.0
    weight_bm25: float = 1.0
    bm25_min_terms: float = 1.0
    # A query of at least this many sentences is searched whole and one sentence at a time by every
    # retriever, each one's lists merged by best rank (retrieval/aspects.py); 0 always searches it whole
    # only. On MRAG's multi-aspect queries hybrid's weighted success ratio rose 0.739 -> 0.924; questions
    # that open with context rank as if searched whole (README, "Long queries"); one- and two-sentence
    # questions are searched as before.
    aspect_sentences: int = 3
    # Multi-head votes' weight in hybrid for a query searched by its sentences, in an index that stores
    # head vectors (head_vectors = true; elsewhere weight_multihead holds). Chosen on MRAG's dev split with
    # the other weights at their defaults (bench/aspect_weights.py); on its reported multi-aspect queries,
    # against 0: MiniLM +0.016 [+0.007, +0.025], mpnet +0.028 [+0.018, +0.038] weighted success ratio.
    weight_multihead_aspects: float = 1.0
    # Candidates each mode contributes before fusion, as a multiple of k (at least 50).
    depth_factor: int = 5
    # From this many chunks on, dense search goes through an IVF index with 8-bit codes (storage/ivf.py;
    # bench/search.py: flat costs ~1 ms at 10k and ~13 ms at 100k). The writer saves it and patches it
    # after changes, so a search process does not train it. Below, search is exact, over a flat index
    # built in memory from the catalog.
    ivf_threshold: int = 50_000
    # 0: the nprobe calibrated when the IVF cells were trained (a recall target, not a fixed number).
    ivf_nprobe: int = 0

    def __post_init__(self):
        weights = ("weight_dense", "weight_multihead", "weight_multihead_aspects", "weight_bm25", "bm25_min_terms")
        bad = [f"{name} = {getattr(self, name)}" for name in weights if getattr(self, name) < 0]
        if bad:
            raise LongdocError(f"search weights must be at least 0: {', '.join(bad)}")


def check_attention(attention: str) -> str:
    if attention not in ATTENTIONS:
        raise LongdocError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
    return attention


@dataclass(frozen=True)
class ReaderSettings:
    attention: str = "auto"  # auto | full | block | landmark | retrieval | scan
    # The reader's weights: auto (int8 on a CPU, bfloat16/float16 on a GPU) | float32 | bfloat16 | float16 | int8
    precision: str = "auto"
    k: int = 5  # passages retrieved for an answer
    # Each retrieved chunk is read as the sentence-aligned windows of about this many words round it, in
    # its section (retrieval/windows.py); 0 reads the chunks alone. bench/window_size.py, Quoref dev split
    # (300 questions, k=5): answer in context 0.48 with chunks alone, 0.85 at 192 words, 0.89 at 256, 0.90 at 384.
    window_words: int = 256
    max_new_tokens: int = 48
    # The reader's system turn. Its text is part of every stored passage KV's key, so changing it
    # re-encodes the passages once.
    instruction: str = DEFAULT_INSTRUCTION
    # Block-Attention: fully re-encode this many of the best passages with the question.
    recompute_top: int = 0
    # Block-Attention: re-encode the first this-many tokens of every cached passage over the stitched
    # context (EPIC), so each passage's attention sink sees the passages before it.
    reencode_first: int = 0
    # Block-Attention: re-encode, in each of this many best cached passages, the chunk that search matched
    # (Prompt.focus: the window's most relevant text) over the stitched context, in the question's prefill
    # pass. bench/dev_sweep.py (Quoref dev 150, the 1.5B): F1 +0.047 [+0.003, +0.093] for 1 against none,
    # at TTFT p50 1.13 s against 0.81 s (the 1.5 s budget); recompute_top=1 gave +0.088 at 3.8 s (dev 60).
    # scan with scan_read = kv: this many of the best excerpts are re-encoded whole, the same way.
    reencode_focus: int = 1
    # Block-Attention: APE's attention temperature on the passages' keys and scale on their log-sum-exp
    # (attention/ape.py); 1 and 1 leave attention exact.
    ape_temperature: float = 1.0
    ape_scale: float = 1.0
    # Answer only when the best retrieved passage's dense cosine to the question reaches this; 0 never
    # abstains. bench/abstain.py (Quoref, answers indexed or not): 0.32 keeps 96% of answerable questions
    # and refuses 43% of unanswerable ones. The fused RRF score separates slightly better at its best
    # point but is rank-based and too coarse to set a low-refusal threshold.
    abstain_below: float = 0.32
    # Passages marked [n] in the answer: those holding at least this share of the top passage's
    # answer-token attention mass. bench/citations.py on 300 Quoref answers: 0.7 gives the best
    # precision/recall F1 for full (0.62) and close to it for block (0.78; best 0.83 at 0.9).
    cite_ratio: float = 0.7
    kv_dtype: str = "float16"  # float16 | int8 | float32
    kv_max_mb: float = 4096.0  # the KV store's size bound; least recently used entries go first
    # Long context (landmark | retrieval): keys read per query row and KV head, the landmark block size,
    # the retrieval cluster size, the block representative, and (fixed layout) the distance from the
    # memory's one position to the question's first token.
    sparse_keys: int = 2048
    landmark_block: int = 16
    cluster_size: int = 16
    block_rep: str = "mean"
    memory_gap: int = 512
    # auto: contexts of up to this many prompt tokens (and within the reader's window) are read exactly
    # with block; longer ones with long_attention (landmark | retrieval | scan). bench/long_context.py, the
    # 0.5B, passkey over 11 depths: scan found 66 of 66 from 4K to 128K, and so did retrieval pinned by
    # scan (sparse_pin), with the same first-token time but twice scan's time per answer token;
    # bench/read_manual.py (128K tokens of the Python manual): 3 of 6 right with scan or landmark.
    exact_up_to: int = 16384
    long_attention: str = "scan"
    # scan: the question attends over segments of up to scan_segment tokens; the sentences it attends to
    # most, each with scan_context sentences either side, up to scan_keep tokens, are then read exactly.
    scan_segment: int = 4096
    scan_keep: int = 1024
    scan_context: int = 1
    # scan_lexical: the weight of a sentence's BM25 rank for the question, fused with its attention rank
    # (reciprocal-rank fusion; 0 = attention alone). Chosen on a dev split (bench/scan_recall.py: the
    # excerpts held the answer for 11 of 12 dev questions at 1 against 8 at 0; reported: 17/18 against 10/18).
    scan_lexical: float = 1.0
    # How scan reads its excerpts: exact (encoded again with the question, in one pass) | kv (their rows of
    # the passages' stored KV, re-rotated into place: only the question is prefilled; reencode_focus best
    # excerpts re-encoded). bench/scan_read.py, the 1.5B, 30 questions over 128K-171K tokens, one scan each:
    # exact 29/30 right, kv 25/30 (with the best excerpt re-encoded 25/30); TTFT p50 67.9 s against 49.1 s.
    scan_read: str = "exact"
    # What a sparse backend's rows always keep: scan (the blocks holding the sentences scan picks, placed
    # nearest the question, the best last) | attention (half the budget on the blocks the question's rows
    # score highest: no scan passes, so a faster first token). bench/long_context.py, the 0.5B, retrieval,
    # passkey 4K-128K x 11 depths: 66 of 66 with scan against 40 of 66 with attention (2 of 11 at 128K).
    sparse_pin: str = "scan"
    # Where kept memory keys are placed: ordered (contiguous, in reading order) | fixed (all at one position).
    memory_layout: str = "ordered"
    kernels: str = "auto"  # auto (Triton on a GPU) | triton | torch

    def __post_init__(self):
        check_attention(self.attention)
        if self.precision not in PRECISIONS:
            raise LongdocError(f"unknown reader precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.kv_dtype not in ("float16", "int8", "float32"):
            raise LongdocError(f"unknown kv_dtype {self.kv_dtype!r}; choose float16, int8 or float32")
        if self.k < 1 or self.max_new_tokens < 1 or self.recompute_top < 0 or self.kv_max_mb <= 0 or self.window_words < 0 \
                or self.reencode_first < 0 or self.reencode_focus < 0 or self.ape_temperature <= 0 or self.ape_scale <= 0:
            raise LongdocError("reader k and max_new_tokens must be at least 1, recompute_top, reencode_first, "
                               "reencode_focus and window_words at least 0, kv_max_mb, ape_temperature and ape_scale positive")
        for name in ("landmark_block", "cluster_size"):
            size = getattr(self, name)
            if size < 16 or size & (size - 1):
                raise LongdocError(f"{name} must be a power of two of at least 16, got {size}")
        if self.long_attention not in LONG_ATTENTIONS:
            raise LongdocError(f"unknown long_attention {self.long_attention!r}; choose one of {', '.join(LONG_ATTENTIONS)}")
        if self.sparse_keys < 1 or self.memory_gap < 1 or self.exact_up_to < 0 or self.scan_segment < 1 or self.scan_keep < 1 \
                or self.scan_context < 0 or self.scan_lexical < 0:
            raise LongdocError("sparse_keys, memory_gap, scan_segment and scan_keep must be at least 1, exact_up_to, "
                               "scan_context and scan_lexical at least 0")
        if self.block_rep not in ("mean", "minmax"):
            raise LongdocError(f"unknown block_rep {self.block_rep!r}; choose mean or minmax")
        if self.memory_layout not in ("ordered", "fixed"):
            raise LongdocError(f"unknown memory_layout {self.memory_layout!r}; choose ordered or fixed")
        if self.scan_read not in ("kv", "exact"):
            raise LongdocError(f"unknown scan_read {self.scan_read!r}; choose kv or exact")
        if self.sparse_pin not in ("attention", "scan"):
            raise LongdocError(f"unknown sparse_pin {self.sparse_pin!r}; choose attention or scan")
        if self.kernels not in ("auto", "triton", "torch"):
            raise LongdocError(f"unknown kernels {self.kernels!r}; choose auto, triton or torch")

    @property
    def kv_max_bytes(self) -> int:
        return int(self.kv_max_mb * 2**20)

    def sparse_spec(self, attention: str):
        """The sparse attention parameters of a long-context backend (landmark | retrieval)."""
        from .attention.memory import SparseSpec

        block = self.landmark_block if attention == "landmark" else self.cluster_size
        return SparseSpec(attention, block, self.sparse_keys, self.block_rep, self.kernels, self.memory_layout)


HEAD_POOLINGS = ("mean", "max", "first")
DEFAULT_HEAD_POOLING = "mean,max,first"
LEGACY_HEAD_POOLING = "mean"  # what an index built before head_pooling existed stores


def parse_head_pooling(pooling: str) -> tuple[str, ...]:
    """'mean,max,first' -> ('mean', 'max', 'first'); an unknown or repeated name is refused."""
    names = tuple(p.strip() for p in str(pooling).split(",") if p.strip())
    if not names or len(set(names)) != len(names) or not set(names) <= set(HEAD_POOLINGS):
        raise LongdocError(f"head_pooling must name one or more of {', '.join(HEAD_POOLINGS)}, each once, "
                           f"comma-separated (got {pooling!r})")
    return names


@dataclass(frozen=True)
class Settings:
    embedder: str = DEFAULT_EMBEDDER
    reader: str = DEFAULT_READER
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    answer: ReaderSettings = field(default_factory=ReaderSettings)
    batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda
    max_file_mb: float = 64.0
    # Longest one file may take to load and chunk (in a child process) before it is skipped; 0: no limit,
    # and parsing runs in the indexing process.
    parse_timeout_s: float = 120.0
    # Chunks embedded together (length-sorted, so less padding) and committed in one transaction:
    # larger is faster, smaller loses less work to a crash.
    commit_chunks: int = 1024
    # Vectors are flushed to the FAISS files after this many committed documents.
    flush_every_docs: int = 200
    # Store MRAG's per-head vectors (and one FAISS file per head) in a new index, for `--mode multihead`
    # and weight_multihead. Off: on the mixed Quoref + MRAG dev split (bench/fusion_weights.py) they
    # earned no fusion weight, and they cost as much space as the dense vectors. Set when an index is
    # created; an existing index keeps what it was built with.
    head_vectors: bool = False
    # How each head's attention outputs are pooled over a text's tokens into head vectors, comma-separated
    # (indexing/embedder.py): mean (MRAG's), max, first (the [CLS] token's). All three vote together in
    # multi-head search: on MRAG Wikipedia's dev queries (mpnet) they beat the mean alone, 0.606 against
    # 0.548, each head vector centred (bench/mrag.py). Set when an index is created, like head_vectors.
    head_pooling: str = DEFAULT_HEAD_POOLING

    def __post_init__(self):
        parse_head_pooling(self.head_pooling)

    @property
    def embed_pooling(self) -> str | None:
        """The head pooling an index built with these settings embeds with: None (no capture) without head
        vectors."""
        return self.head_pooling if self.head_vectors else None

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    def replace(self, **changes) -> "Settings":
        """Copy with flat keys changed: `batch_size=8`, `chunk_tokens=64`, `search_rrf_k=30`."""
        for section in _SECTIONS:
            prefix = section + "_"
            sub = {k[len(prefix):]: changes.pop(k) for k in list(changes) if k.startswith(prefix)}
            if sub:
                changes[section] = dataclasses.replace(getattr(self, section), **sub)
        return dataclasses.replace(self, **changes)


_SECTIONS = {"chunk": ChunkSettings, "search": SearchSettings, "answer": ReaderSettings}


def _flat_fields() -> dict[str, type]:
    out = {}
    for f in fields(Settings):
        if f.name in _SECTIONS:
            out.update({f"{f.name}_{c.name}": c.type for c in fields(_SECTIONS[f.name])})
        else:
            out[f.name] = f.type
    return out


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _coerce(name: str, value, typ) -> object:
    kind = typ if isinstance(typ, str) else typ.__name__
    conv = {"int": int, "float": float, "str": str, "bool": _boolean}[kind]
    try:
        return conv(value)
    except (TypeError, ValueError):
        raise LongdocError(f"setting {name!r}: cannot read {value!r} as {kind}") from None


def settings_requested(config_file=None, **overrides) -> bool:
    """Whether the user asked for any setting (file, LONGDOC_* variable or flag); if not, an
    existing index keeps the settings it was built with."""
    env = any(f"LONGDOC_{name.upper()}" in os.environ for name in _flat_fields())
    return config_file is not None or env or any(v is not None for v in overrides.values())


def load_settings(config_file: str | Path | None = None, table: dict | None = None, **overrides) -> Settings:
    """Settings from a TOML file (flat keys or a [chunk] table) or a table already read (an eval
    config's [settings]), then LONGDOC_* env vars, then overrides."""
    known = _flat_fields()
    values: dict[str, object] = {}
    data = dict(table or {})
    if config_file is not None:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise LongdocError(f"{path}: cannot read settings: {e}") from None
    for key, val in data.items():
        if key in _SECTIONS and isinstance(val, dict):
            values.update({f"{key}_{k}": v for k, v in val.items()})
        else:
            values[key] = val
    for name in known:
        env = os.environ.get(f"LONGDOC_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise LongdocError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    coerced = {k: _coerce(k, v, known[k]) for k, v in values.items()}
    return Settings().replace(**coerced)
