"""Streamed asks whose clients leave: does the server stop generating for them?

A `longdoc serve` over 12 essays. Baseline: the median latency of the same non-streamed ask on the
warm server, measured before. Then N streamed asks are opened and closed right after their headers,
and the same ask is timed again at once: its latency over the baseline (goal: at most 1.5x), with the
server's own count of answered and abandoned asks. Writes bench/results/dropped_streams.json.

    python bench/dropped_streams.py [--drops 24]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from serve_load import AUTH, serve_essays  # noqa: E402

QUESTION = {"question": "How should you get startup ideas?", "max_new_tokens": 32, "k": 5}


def timed_ask(base: str) -> float:
    t = time.perf_counter()
    httpx.post(f"{base}/v1/ask", json=QUESTION, headers=AUTH, timeout=300).raise_for_status()
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--drops", type=int, default=24)
    args = parser.parse_args()
    from common import write_result

    from longdoc.evaluation.corpora import corpus_path

    work, server, base = serve_essays(sorted(corpus_path("paul-graham-essays").glob("*.txt"))[:12], "longdoc-drops-")
    try:
        timed_ask(base)  # warm: the reader loads, the passages' KV is stored
        baseline = statistics.median(timed_ask(base) for _ in range(3))
        t = time.perf_counter()
        for _ in range(args.drops):
            with httpx.stream("POST", f"{base}/v1/ask", json={**QUESTION, "stream": True}, headers=AUTH, timeout=60) as r:
                r.raise_for_status()  # closed here, before any event is read
        dropping_s = time.perf_counter() - t
        after = timed_ask(base)
        asks = httpx.get(f"{base}/v1/status", headers=AUTH, timeout=60).json()["asks"]
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    ratio = after / baseline
    print(f"ask on a warm server (baseline): {baseline:.2f} s; after {args.drops} dropped streams: {after:.2f} s "
          f"({ratio:.2f}x; goal <= 1.5x); server: {asks['answered']} answered, {asks['abandoned']} abandoned")
    write_result("dropped_streams", {"drops": args.drops, "baseline_s": baseline, "after_drops_s": after,
                                     "ratio": ratio, "dropping_s": dropping_s, "asks": asks})


if __name__ == "__main__":
    main()
