"""What supervision adds to a check: `batchcheck check` as users run it (a parent watching a child process)
against the same check run in-process (BATCHCHECK_UNSUPERVISED=1), each a fresh `python -m batchcheck`,
alternated, on a tiny fixture graph (where the fixed cost shows most).

    .venv/bin/python benchmarks/bench_supervise.py [ROUNDS]
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _model(folder: Path) -> Path:
    from fixtures.graphs import build_case

    return build_case("mobilenet_v1", folder)


def _wall(model: Path, supervised: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "BATCHCHECK_UNSUPERVISED"}
    if not supervised:
        env["BATCHCHECK_UNSUPERVISED"] = "1"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batchcheck", "check", str(model), "--trials", "2"],
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"check failed: {done.stderr}")
    return elapsed


def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        model = _model(Path(folder))
        _wall(model, True)  # warm the file cache
        pairs = [(_wall(model, False), _wall(model, True)) for _ in range(rounds)]
    plain = [p for p, _ in pairs]
    supervised = [s for _, s in pairs]
    added = [s - p for p, s in pairs]
    print(f"{rounds} rounds, mobilenet_v1 fixture (64 px), --trials 2, load average {os.getloadavg()[0]:.1f}")
    print(f"in-process   median {statistics.median(plain):.2f} s  (min {min(plain):.2f})")
    print(f"supervised   median {statistics.median(supervised):.2f} s  (min {min(supervised):.2f})")
    print(f"added        median {statistics.median(added):+.2f} s  (min-to-min {min(supervised) - min(plain):+.2f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
