"""The report's pictures (matplotlib, written as PNG): recall@k curves, QA bars with intervals, the
needle heatmap and latency histograms. Each takes plain numbers, so benchmarks draw with them too."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def recall_curves(panels: dict[str, dict[str, list[tuple[int, float, float, float]]]], path: Path) -> Path:
    """panels: title -> line label -> [(k, mean, low, high)], one panel per dataset."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 1.5, 4.2), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, points in lines.items():
            ks, mean, low, high = (np.array(v, dtype=float) for v in zip(*sorted(points)))
            ax.plot(ks, mean, marker="o", label=label)
            ax.fill_between(ks, low, high, alpha=0.15)
        ax.set_xscale("log")
        ks_all = sorted({p[0] for pts in lines.values() for p in pts})
        ax.set_xticks(ks_all, [str(k) for k in ks_all])
        ax.set_xticks([], minor=True)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (documents retrieved)")
        ax.set_ylabel("recall@k")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, title="mode (shade: 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_bars(groups: dict[str, dict[str, tuple[float, float, float]]], path: Path, title: str) -> Path:
    """groups: bar group (a backend) -> metric -> (mean, low, high); error bars are the intervals."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(m for g in groups.values() for m in g))
    width = 0.8 / max(1, len(metrics))
    fig, ax = plt.subplots(figsize=(min(13.0, max(6.0, 0.55 * len(groups) * max(1, len(metrics)) + 2.5)), 4.4))
    x = np.arange(len(groups))
    for i, metric in enumerate(metrics):
        vals = [groups[g].get(metric, (math.nan, math.nan, math.nan)) for g in groups]
        mean = np.array([v[0] for v in vals])
        err = np.array([[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]])
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, mean, width, yerr=err, capsize=3, label=metric,
               error_kw={"elinewidth": 1, "ecolor": "#333"})
    ax.set_xticks(x, list(groups), rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center",
                  fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (error bars: 95% bootstrap CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def needle_heatmap(panels: dict[str, dict[tuple[float, int], float]], path: Path, title: str) -> Path:
    """panels: backend -> {(depth, length in tokens): share of trials that found the key}."""
    plt = _pyplot()
    depths = sorted({d for cells in panels.values() for d, _ in cells})
    lengths = sorted({n for cells in panels.values() for _, n in cells})
    fig, axes = plt.subplots(1, len(panels), figsize=(0.75 * len(lengths) * len(panels) + 3, 0.45 * len(depths) + 2.2),
                             sharey=True, squeeze=False, layout="constrained")
    image = None
    for ax, (backend, cells) in zip(axes[0], panels.items()):
        grid = np.full((len(depths), len(lengths)), np.nan)
        for (d, n), v in cells.items():
            grid[depths.index(d), lengths.index(n)] = v
        image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        for i in range(len(depths)):
            for j in range(len(lengths)):
                v = grid[i, j]
                ax.text(j, i, "–" if v != v else ("✓" if v == 1 else "✗" if v == 0 else f"{v:.0%}"),
                        ha="center", va="center", fontsize=9)
        acc = [np.nanmean(grid[:, j]) if (~np.isnan(grid[:, j])).any() else np.nan for j in range(len(lengths))]
        ax.set_xticks(range(len(lengths)), [f"{_tokens(n)}\n{a:.0%}" if a == a else f"{_tokens(n)}\nn/a"
                                            for n, a in zip(lengths, acc)], fontsize=8)
        ax.set_title(backend, fontsize=10)
        ax.set_xlabel("context tokens (accuracy)", fontsize=8)
    axes[0][0].set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths], fontsize=8)
    axes[0][0].set_ylabel("needle depth")
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="found")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _tokens(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def latency_histograms(panels: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """panels: title (with unit) -> series label -> values. Small multiples: one column per panel, one
    histogram row per series on a shared log axis, so overlapping series stay readable."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

    panels = {t: {k: [v for v in vs if v and v > 0] for k, vs in series.items()} for t, series in panels.items()}
    panels = {t: {k: vs for k, vs in series.items() if vs} for t, series in panels.items()}
    panels = {t: series for t, series in panels.items() if series}
    rows = max(len(series) for series in panels.values())
    fig = plt.figure(figsize=(4.6 * len(panels), 0.95 * rows + 1.0), layout="constrained")
    for sub, (title, series) in zip(np.atleast_1d(fig.subfigures(1, len(panels))), panels.items()):
        values = [v for vs in series.values() for v in vs]
        spread = max(values) > min(values) * 1.001
        bins = np.geomspace(min(values), max(values) * 1.001, 30) if spread else 5
        axes = np.atleast_1d(sub.subplots(len(series), 1, sharex=True))
        for ax, (label, vs), colour in zip(axes, series.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
            ax.hist(vs, bins=bins, color=colour, alpha=0.8)
            ax.text(0.99, 0.85, f"{label}: p50 {np.median(vs):,.0f}, p95 {np.quantile(vs, 0.95):,.0f}",
                    transform=ax.transAxes, ha="right", va="top", fontsize=7)
            ax.yaxis.set_major_locator(MaxNLocator(2, integer=True))
            ax.tick_params(labelsize=7)
            if spread:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_formatter(NullFormatter())
        sub.suptitle(title, fontsize=9)
        axes[-1].set_xlabel("log scale; count of questions per bin", fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
