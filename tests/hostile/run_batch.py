"""Run many `batchcheck check …` invocations in this one process (TensorFlow imported once), in-process and
unsupervised; one JSON line per case (exit code, stderr, seconds) appended to the results file as each ends.

    python -m hostile.run_batch CASES.json RESULTS.jsonl WORKDIR

Each case runs with WORKDIR as its current folder; its stdout and stderr (file descriptors 1 and 2, so C++
output is caught too) go to files under WORKDIR's parent, read back and removed.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

MEMORY = 4 * 2**30


def _run(args: list[str], capture: Path) -> tuple[int, str]:
    from batchcheck.cli import main

    saved = os.dup(1), os.dup(2)
    with open(capture / "out", "wb") as out, open(capture / "err", "wb") as err:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        try:
            code = main(["check", *args])
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
    return code, (capture / "err").read_text(errors="replace")


def run_all(cases: list[dict], results: Path, workdir: Path) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY, MEMORY))  # a memory bomb fails here, then reruns supervised
    os.environ["BATCHCHECK_UNSUPERVISED"] = "1"
    os.chdir(workdir)
    capture = workdir.parent / "capture"
    capture.mkdir(exist_ok=True)
    for case in cases:
        started = time.monotonic()
        code, err = _run(case["args"], capture)
        with results.open("a") as out:
            out.write(json.dumps({"name": case["name"], "code": code, "err": err,
                                  "seconds": time.monotonic() - started}) + "\n")


if __name__ == "__main__":
    run_all(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), Path(sys.argv[3]))
