"""Balanced spherical k-means over cached keys, for retrieval attention (DESIGN §4).

Keys are clustered by direction inside windows of `window` consecutive tokens into clusters of exactly
`size` keys, then reordered so that each cluster is `size` consecutive stored keys. Retrieval attention
is then block selection over the reordered keys: a block is a cluster of keys that point the same way,
wherever they sit in the text, so a query's few large logits gather in few blocks. Equal sizes keep the
sparse kernels' fixed-block layout; windows keep the cost linear in the context length."""
from __future__ import annotations

import torch


def _balanced_assign(sim: torch.Tensor, capacity: torch.Tensor) -> torch.Tensor:
    """sim (N, L, C) similarities, capacity (N, C) summing to L per row -> (N, L) cluster ids, each
    cluster filled exactly to its capacity. Rounds: every unassigned key proposes to its most similar
    cluster with room left; each cluster accepts its most similar proposers up to its room."""
    n, length, c = sim.shape
    assign = torch.full((n, length), -1, dtype=torch.long, device=sim.device)
    room = capacity.clone()
    rows = torch.arange(n, device=sim.device)[:, None]
    while (assign < 0).any():
        open_sim = sim.masked_fill((room == 0)[:, None, :], float("-inf"))
        value, best = open_sim.max(-1)
        free = assign < 0
        best = torch.where(free, best, c)  # assigned keys propose to a dummy cluster c
        value = torch.where(free, value, float("-inf"))
        order = torch.argsort(value, dim=-1, descending=True, stable=True)
        order = order.gather(1, torch.argsort(best.gather(1, order), dim=-1, stable=True))  # by cluster, best first
        grouped = best.gather(1, order)
        rank = torch.arange(length, device=sim.device) - torch.searchsorted(grouped, grouped)
        room_ext = torch.cat([room, room.new_zeros(n, 1)], 1)
        accept = (grouped < c) & (rank < room_ext.gather(1, grouped))
        assign[rows.expand(-1, length)[accept], order[accept]] = grouped[accept]
        room -= torch.zeros_like(room_ext).scatter_add_(1, grouped, accept.long())[:, :c]
    return assign


def _farthest_seeds(x: torch.Tensor, c: int) -> torch.Tensor:
    """(N, c, D) seeds: the first key, then each time the key least similar to every seed so far."""
    n = x.shape[0]
    rows = torch.arange(n, device=x.device)
    seeds = [x[:, 0]]
    nearest = x @ x[:, 0, :, None]  # (N, L, 1) similarity to the nearest seed
    for _ in range(c - 1):
        pick = nearest[..., 0].argmin(-1)
        seeds.append(x[rows, pick])
        nearest = torch.maximum(nearest, x @ seeds[-1][..., None])
    return torch.stack(seeds, 1)


def _window_order(x: torch.Tensor, size: int, iters: int) -> torch.Tensor:
    """x (N, L, D) unit keys, one window per row -> (N, L) order within the window."""
    n, length, _ = x.shape
    c = -(-length // size)
    capacity = torch.full((n, c), size, dtype=torch.long, device=x.device)
    capacity[:, -1] = length - size * (c - 1)
    centroids = _farthest_seeds(x, c)
    for _ in range(iters):
        assign = (x @ centroids.transpose(1, 2)).argmax(-1)
        sums = torch.zeros_like(centroids).scatter_add_(1, assign[..., None].expand_as(x), x)
        centroids = torch.where(sums.norm(dim=-1, keepdim=True) > 0,
                                torch.nn.functional.normalize(sums, dim=-1), centroids)
    return torch.argsort(_balanced_assign(x @ centroids.transpose(1, 2), capacity), dim=-1, stable=True)


def cluster_order(keys: torch.Tensor, size: int = 16, window: int = 1024, iters: int = 8) -> torch.Tensor:
    """keys (N, T, D) -> (N, T) permutation: stored key j is original key order[:, j]. Within each window
    the keys are grouped into balanced spherical k-means clusters of `size` (the last one may be short).
    All whole windows are clustered in one batch; a short last window on its own."""
    if window % size:
        raise ValueError(f"window {window} must be a multiple of the cluster size {size}")
    n, t, d = keys.shape
    x = torch.nn.functional.normalize(keys.float(), dim=-1)
    whole = t // window * window
    orders = []
    if whole:
        w = whole // window
        local = _window_order(x[:, :whole].reshape(n * w, window, d), size, iters).view(n, w, window)
        orders.append((local + torch.arange(0, whole, window, device=keys.device)[:, None]).reshape(n, whole))
    if whole < t:
        orders.append(_window_order(x[:, whole:], size, iters) + whole)
    return torch.cat(orders, dim=1)
