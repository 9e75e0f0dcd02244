"""How long a person at the terminal waits: each `longdoc` command started cold in a new process, on an
index of the 49 essays, against the floors measured in the same run (a bare interpreter; one that imports
torch, which any command that embeds a query must).

python bench/cli_start.py [--repeat 5] [--index DIR] [--baseline REV]
--baseline runs the same longdoc commands from a git worktree of REV too (same index, same interpreter and
packages), and prints this checkout's time as a ratio of it.
Issue 17's goals: a no-op `index` < 1 s, `search --mode bm25` < 0.5 s, a hybrid `search` < 3 s."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from longdoc.evaluation.corpora import corpus_path  # noqa: E402

GOALS = {"index (no-op)": 1.0, "search --mode bm25": 0.5, "search (hybrid)": 3.0}


def timed(argv: list[str], repeat: int, cwd: Path | None = None) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
        out.append(time.perf_counter() - t)
    return out


def breakdown(argv: list[str]) -> list[tuple[str, float]]:
    """The top-level imports that took longest (python -X importtime), in seconds."""
    err = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("   "):
            rows.append((parts[2].strip(), int(parts[1]) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:6]


def commands(essays: Path, index: Path) -> dict[str, list[str]]:
    longdoc = [sys.executable, "-m", "longdoc"]
    query = "how do you find startup ideas"
    return {
        "python (floor)": [sys.executable, "-c", "pass"],
        "python + import torch (floor)": [sys.executable, "-c", "import torch"],
        "index (no-op)": [*longdoc, "index", str(essays), "--index", str(index), "--json"],
        "status": [*longdoc, "status", "--index", str(index), "--json"],
        "search --mode bm25": [*longdoc, "search", query, "--mode", "bm25", "--index", str(index), "--json"],
        "search (hybrid)": [*longdoc, "search", query, "--index", str(index), "--json"],
    }


def measure(essays: Path, index: Path, repeat: int, cwd: Path | None = None, label: str = "") -> tuple[dict, float]:
    """(each command's times, the first `index` run's seconds or None for an index given) for the longdoc
    that `python -m` finds from cwd (it looks in its working directory first)."""
    first_index_s = None
    if not (index / "catalog.sqlite").exists():
        first_index_s = timed([sys.executable, "-m", "longdoc", "index", str(essays), "--index", str(index)], 1, cwd)[0]
    rows = {}
    for name, argv in commands(essays, index).items():
        if label and "floor" in name:
            continue
        times = timed(argv, repeat, cwd)
        rows[name] = {"p50_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}
        goal = GOALS.get(name)
        print(f"{label}{name:32s} p50 {rows[name]['p50_s']:.3f} s  min {min(times):.3f}  max {max(times):.3f}"
              + (f"  goal < {goal} s: {'met' if rows[name]['p50_s'] < goal else 'NOT met'}" if goal and not label
                 else ""), flush=True)
    return rows, first_index_s


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--index", type=Path, default=None, help="an essays index to reuse (else built here)")
    parser.add_argument("--baseline", default=None, help="a git revision to time the same commands from, on "
                                                         "an index it builds itself")
    args = parser.parse_args()
    essays = corpus_path("paul-graham-essays")
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index or Path(tmp) / "essays"
        rows, first_index_s = measure(essays, index, args.repeat)
        baseline = None
        if args.baseline:
            worktree = Path(tmp) / "baseline"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], check=True,
                           capture_output=True, cwd=Path(__file__).parent)
            try:
                base_rows, base_first = measure(essays, Path(tmp) / "baseline-essays", args.repeat, worktree,
                                                f"baseline {args.baseline}: ")
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], capture_output=True,
                               cwd=Path(__file__).parent)
            baseline = {"rev": args.baseline, "first_index_s": base_first, "commands": base_rows}
            for name, row in base_rows.items():
                rows[name]["vs_baseline"] = rows[name]["p50_s"] / row["p50_s"]
                print(f"{name:32s} {rows[name]['vs_baseline']:.2f}x the baseline's time")
        torch_floor = rows["python + import torch (floor)"]["p50_s"]
        rows["search (hybrid)"]["vs_torch_import"] = rows["search (hybrid)"]["p50_s"] / torch_floor
        print(f"search (hybrid): {rows['search (hybrid)']['vs_torch_import']:.2f}x a bare `import torch`")
        hybrid_imports = breakdown(commands(essays, index)["search (hybrid)"][1:])
        print("hybrid search, slowest top-level imports:", ", ".join(f"{m} {s:.2f} s" for m, s in hybrid_imports))
    write_result("cli_start", {"repeat": args.repeat, "goals_s": GOALS, "first_index_s": first_index_s,
                               "commands": rows, "baseline": baseline, "hybrid_top_imports_s": hybrid_imports})


if __name__ == "__main__":
    main()
