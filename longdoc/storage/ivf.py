"""The IVF index dense search uses past `search.ivf_threshold` vectors.

- Cells: nlist = 4 sqrt(n), trained by k-means on a sample of the catalog's vectors.
- Codes: 8-bit scalar quantisation, 1 byte a dimension (384 B a MiniLM vector, a quarter of float32).
  On Quoref's real vectors it finds the same top 10 as float32 codes but for 0.5% (bench/ivf_recall.py).
- nprobe: calibrated when the cells are trained. Some of the index's own vectors are asked as queries
  (themselves left out), and the smallest nprobe is kept at which SELF_RECALL of their exact top 10 lie
  in probed cells. A fixed nprobe does not carry across sizes and embedders: nprobe 32 found 0.851 of
  the exact top 10 for Quoref's questions at 26.7K vectors.
"""
from __future__ import annotations

from typing import Callable

import faiss
import numpy as np

# Stored vectors are easier queries than questions: they sit inside their cells. Chosen on Quoref's
# questions (the dev set; bench/ivf_recall.py): at 26.7K vectors, 0.98 of stored vectors' neighbours in
# probed cells gave nprobe 96 and the questions 0.950 of their exact top 10; 0.99 gave 128 and 0.966.
SELF_RECALL = 0.99
NPROBES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
CALIBRATION_QUERIES = 256
TOP = 10


def is_ivf(index: faiss.Index) -> bool:
    return isinstance(index, faiss.IndexIVF)


def ivf_ids(ivf: faiss.Index) -> np.ndarray:
    """Every id stored in an IVF index's inverted lists."""
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(cell), lists.list_size(cell)).copy()
             for cell in range(ivf.nlist) if lists.list_size(cell)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def nlist_for(n: int) -> int:
    """4 sqrt(n) cells, but at least 39 vectors a cell (k-means needs them; a small ivf_threshold)."""
    return max(1, min(int(4 * np.sqrt(n)), n // 39))


def trained_ivf(sample: np.ndarray, n: int) -> faiss.Index:
    """An empty IVF-SQ8 index over inner product for about n vectors, its cells and code ranges trained
    on `sample` (normalised float32)."""
    d = sample.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist_for(n), faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.train(np.ascontiguousarray(sample, np.float32))
    return ivf


def training_sample(ids: np.ndarray, seed: int = 0, floor: int = 100_000) -> np.ndarray:
    """The sorted ids k-means trains on: all of them up to `floor`, else at least 39 per cell."""
    size = min(len(ids), max(floor, 39 * nlist_for(len(ids))))
    return np.sort(np.random.default_rng(seed).choice(ids, size, replace=False))


class ExactNeighbours:
    """The exact top TOP neighbours (ids and vectors) of a few query vectors, accumulated over batches of
    stored vectors (so the whole set is never in memory), each query's own id left out."""

    def __init__(self, queries: np.ndarray, query_ids: np.ndarray):
        self.queries, self.query_ids = queries, query_ids
        self.scores = np.full((len(queries), TOP), -np.inf, np.float32)
        self.ids = np.full((len(queries), TOP), -1, np.int64)
        self.vectors = np.zeros((len(queries), TOP, queries.shape[1]), np.float32)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        scores = self.queries @ vectors.T
        scores[self.query_ids[:, None] == ids[None, :]] = -np.inf
        k = min(TOP, len(ids))
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # this batch's best, unordered
        scores = np.concatenate([self.scores, np.take_along_axis(scores, best, axis=1)], axis=1)
        every = np.concatenate([self.ids, ids[best]], axis=1)
        rows = np.concatenate([self.vectors, vectors[best]], axis=1)
        keep = np.argsort(-scores, axis=1, kind="stable")[:, :TOP]
        self.scores = np.take_along_axis(scores, keep, axis=1)
        self.ids = np.take_along_axis(every, keep, axis=1)
        self.vectors = np.take_along_axis(rows, keep[:, :, None], axis=1)


def calibrate_nprobe(ivf: faiss.Index, exact: ExactNeighbours, target: float = SELF_RECALL) -> int:
    """The smallest nprobe of NPROBES (or nlist) at which `target` of the queries' exact neighbours lie
    in probed cells: what IVF with exact codes would find. The cells alone decide it, so the loss of the
    8-bit codes (measured apart, in bench/ivf_recall.py) does not push nprobe to a full scan."""
    found = exact.ids >= 0
    cells = ivf.quantizer.assign(exact.vectors[found], 1).ravel()
    _, order = ivf.quantizer.search(exact.queries, ivf.nlist)  # each query's cells, in probing order
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(ivf.nlist)[None, :].repeat(len(order), 0), axis=1)
    ranks = rank[np.nonzero(found)[0], cells]  # where each neighbour's cell comes in its query's order
    for nprobe in [p for p in NPROBES if p < ivf.nlist]:
        if np.mean(ranks < nprobe) >= target:
            return nprobe
    return ivf.nlist


def build_ivf(ids: np.ndarray, read: Callable[[np.ndarray], np.ndarray], batch: int = 4096) -> tuple[faiss.Index, int]:
    """(an IVF index holding every id, its calibrated nprobe). read(ids): those ids' normalised float32
    vectors, in order; they are read a batch at a time."""
    sample = training_sample(ids)
    vectors = read(sample)
    ivf = trained_ivf(vectors, len(ids))
    pick = np.random.default_rng(1).choice(len(sample), min(len(sample), CALIBRATION_QUERIES), replace=False)
    exact = ExactNeighbours(vectors[pick], sample[pick])
    del vectors
    for start in range(0, len(ids), batch):
        part = ids[start:start + batch]
        vectors = read(part)
        ivf.add_with_ids(vectors, part)
        exact.add(vectors, part)
    return ivf, calibrate_nprobe(ivf, exact)
