"""What supervision adds to a check: `batchcheck check` as users run it (a parent watching a child process)
against the same check run in-process (BATCHCHECK_UNSUPERVISED=1), each a fresh `python -m batchcheck`,
alternated, on a tiny fixture graph (where the fixed cost shows most); then the same for `pytest --graph`
(the model in a supervised child serving the plugin's calls, against the model in the pytest process).

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


COMMANDS = {
    "batchcheck check": ["-m", "batchcheck", "check", "{model}", "--trials", "2"],
    "pytest --graph": ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--graph", "{model}", "--graph-trials", "2",
                       "--graph-examples", "20"],
}


def _wall(command: list[str], model: Path, supervised: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "BATCHCHECK_UNSUPERVISED"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))  # this checkout's code
    if not supervised:
        env["BATCHCHECK_UNSUPERVISED"] = "1"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *(arg.format(model=model) for arg in command)], env=env,
                          capture_output=True, text=True, cwd=model.parent)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"check failed: {done.stdout[-2000:]}{done.stderr}")
    return elapsed


def main(rounds: int) -> None:
    print(f"{rounds} rounds, mobilenet_v1 fixture (64 px), --trials 2, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        model = _model(Path(folder))
        for name, command in COMMANDS.items():
            _wall(command, model, True)  # warm the file cache
            pairs = [(_wall(command, model, False), _wall(command, model, True)) for _ in range(rounds)]
            plain = [p for p, _ in pairs]
            supervised = [s for _, s in pairs]
            added = [s - p for p, s in pairs]
            print(f"{name}")
            print(f"  in-process   median {statistics.median(plain):.2f} s  (min {min(plain):.2f})")
            print(f"  supervised   median {statistics.median(supervised):.2f} s  (min {min(supervised):.2f})")
            print(f"  added        median {statistics.median(added):+.2f} s  "
                  f"(min-to-min {min(supervised) - min(plain):+.2f} s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
