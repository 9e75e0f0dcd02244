"""Peak memory of `longdoc index` on one large text file, end to end (the CLI as a user runs it).

Issue 14's bar: peak RSS <= 1.5 GB for any single file up to the size limit (max_file_mb, 64). Each size
gets a fresh index; the text is real prose (the essays corpus, each repeat numbered so no two chunks are
equal). The process tree's RSS (the indexer and its parse child together) is sampled every 50 ms. The
baseline, measured in the same run, is the smallest file: the ratios say how memory grows with the file.

    python bench/ingest_memory.py [--sizes 1,8,64]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402


def make_text(path: Path, megabytes: float) -> None:
    from longdoc.evaluation.corpora import corpus_path

    essays = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(corpus_path("paul-graham-essays").glob("*.txt")))
    target, parts, size, n = int(megabytes * 2**20), [], 0, 0
    while size < target:
        part = f"Part {n}.\n\n{essays}\n\n"
        parts.append(part)
        size += len(part.encode("utf-8"))
        n += 1
    # Cut at `target` bytes, not characters (the essays have curly quotes): a file even a few bytes over
    # max_file_mb would be skipped. A character the cut splits is dropped.
    path.write_bytes("".join(parts).encode("utf-8")[:target].decode("utf-8", errors="ignore").encode("utf-8"))


def measure(text: Path, index: Path) -> dict:
    cmd = [sys.executable, "-m", "longdoc", "index", str(text), "--index", str(index), "--json"]
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_tree = peak_main = 0
    timeline = []  # (seconds, indexer MB, whole tree MB), one sample a second kept for the plot
    while proc.poll() is None:
        try:
            main = proc.memory_info().rss
            tree = main + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            continue
        peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        now = time.perf_counter() - t0
        if not timeline or now - timeline[-1][0] >= 1.0:
            timeline.append((round(now, 1), round(main / 2**20), round(tree / 2**20)))
        time.sleep(0.05)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    import json

    report = json.loads(out)
    assert report["skipped"] == 0 and report["chunks_embedded"] > 0, report["skipped_files"]
    return {"seconds": round(time.perf_counter() - t0, 1), "chunks": report["chunks_embedded"],
            "peak_tree_mb": round(peak_tree / 2**20), "peak_indexer_mb": round(peak_main / 2**20),
            "timings": report["timings"], "timeline": timeline}


def plot(rows: list[dict], path: Path) -> None:
    """RSS over time per file size: the indexer and the whole tree (with the parse child)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for row, colour in zip(rows, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        t, main, tree = zip(*row["timeline"]) if row["timeline"] else ((), (), ())
        ax.plot(t, tree, color=colour, label=f"{row['file_mb']:g} MiB: indexer + parse child")
        ax.plot(t, main, color=colour, linestyle="--", label=f"{row['file_mb']:g} MiB: indexer")
    ax.axhline(1536, color="black", linewidth=0.8, linestyle=":", label="goal, 1.5 GB")
    ax.set_xlabel("seconds since `longdoc index` started")
    ax.set_ylabel("RSS, MB")
    ax.set_title("Peak memory of `longdoc index` on one large text file")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,8,64", help="file sizes in MiB, the first is the baseline")
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes:
            text = Path(tmp) / f"book-{mb:g}mb.txt"
            make_text(text, mb)
            row = {"file_mb": mb, **measure(text, Path(tmp) / f"index-{mb:g}")}
            rows.append(row)
            text.unlink()
            base = rows[0]
            print(f"{mb:6g} MiB: {row['chunks']:7d} chunks in {row['seconds']:7.1f} s, peak RSS {row['peak_tree_mb']:5d} MB "
                  f"(indexer {row['peak_indexer_mb']} MB; {row['peak_tree_mb'] / base['peak_tree_mb']:.2f}x the "
                  f"{base['file_mb']:g} MiB file's)", flush=True)
    path = write_result("ingest_memory", {"goal": "peak RSS <= 1536 MB for one file up to max_file_mb (64)",
                                          "baseline": f"{sizes[0]:g} MiB file, same run", "rows": rows})
    plot(rows, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
