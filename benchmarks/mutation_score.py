#!/usr/bin/env python3
"""Score batchcheck on the mutation corpus: every clean graph (../shared/real-models and the invariant fixtures)
with each kind of known batch dependence injected at a seeded live site (`fixtures/mutations.py`).

Per mutant: does `check` name the injected node with the right cause (right / elsewhere / missed / error), does
`lint` report it statically, does `fix` undo it (BN switched to training, dropout: exit 0, re-check invariant,
outputs equal to the clean graph's when the moving statistics were kept). Per clean graph: `check` passes, lint
finds no batch dependence, `fix --fold-bn` keeps it invariant with the same outputs. Prints Markdown tables.

    python benchmarks/mutation_score.py                       # the whole corpus (about 15 min on 2 cores)
    python benchmarks/mutation_score.py --graphs mobilenet    # graphs whose name contains a word
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BATCHCHECK_UNSUPERVISED", "1")  # every command in this process: one TensorFlow import
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fixtures.mutation_corpus import (  # noqa: E402
    FIXABLE_KINDS,
    REAL_MODELS,
    Corpus,
    found_at_culprit,
    lint_errors,
    lint_finds_batch_dependence,
)
from fixtures.mutations import KINDS  # noqa: E402

OUTCOMES = ("right", "elsewhere", "missed", "error")


@dataclass
class Score:
    """Counts for one row of a table."""
    mutants: int = 0
    check: Counter = field(default_factory=Counter)  # outcome → mutants
    lint: int = 0
    fixable: int = 0
    fixed: int = 0

    def add(self, other: Score) -> None:
        self.mutants += other.mutants
        self.check.update(other.check)
        self.lint += other.lint
        self.fixable += other.fixable
        self.fixed += other.fixed

    def cells(self) -> list[str]:
        fix = f"{self.fixed}/{self.fixable}" if self.fixable else "–"
        return [str(self.mutants), *(str(self.check[o]) for o in OUTCOMES), f"{self.lint}/{self.mutants}", fix]


def score_graph(corpus: Corpus, name: str, misses: list[str]) -> tuple[dict[str, Score], list[str]]:
    """Scores per kind for graph `name`, and its clean-graph cells (check, lint, fold-bn)."""
    clean = corpus.clean(name)
    passes = clean.run.code == 0
    lint_clean = not lint_finds_batch_dependence(corpus.lint(clean.path, clean))
    fold = corpus.fold(name) if clean.graph.fix and passes else None
    folded = "–" if fold is None else "yes" if fold.run.code == 0 and fold.outputs_equal else "NO"
    if fold is not None and folded == "NO":
        misses.append(f"{name}: fix --fold-bn exit {fold.run.code}, max |diff| {fold.max_diff}")
    if not passes:
        misses.append(f"{name}: the clean graph does not pass (exit {clean.run.code})")
    scores = {}
    for kind in KINDS:
        mutant = corpus.mutant(name, kind)
        if mutant is None:
            continue
        score = scores[kind] = Score(mutants=1)
        run = corpus.check(mutant)
        outcome = found_at_culprit(mutant.mutation, run)
        score.check[outcome] += 1
        if outcome != "right":
            first = (run.report or {}).get("first_divergence") or {}
            misses.append(f"{name} {kind}: check expected `{mutant.mutation.culprit}` ({mutant.mutation.cause}), "
                          f"got {outcome}: exit {run.code}, `{first.get('node')}` ({first.get('cause')})")
        errors = lint_errors(corpus.lint(mutant.path, clean))
        score.lint = int((mutant.mutation.cause, mutant.mutation.culprit) in errors)
        if not score.lint:
            misses.append(f"{name} {kind}: lint did not report `{mutant.mutation.culprit}` ({mutant.mutation.cause})")
        if kind in FIXABLE_KINDS and clean.graph.fix:
            fixed = corpus.fix(mutant)
            proven = fixed.run.code == 0 and (fixed.outputs_equal or not mutant.mutation.restorable)
            score.fixable, score.fixed = 1, int(proven)
            if not proven:
                misses.append(f"{name} {kind}: fix exit {fixed.run.code}, max |fixed − clean| {fixed.max_diff}")
    return scores, ["yes" if passes else "NO", "yes" if lint_clean else "NO", folded]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graphs", nargs="*", default=[], metavar="WORD", help="only graphs whose name contains a WORD")
    parser.add_argument("--real-models", type=Path, default=REAL_MODELS, help=f"default {REAL_MODELS}")
    parser.add_argument("--workdir", type=Path, help="where the mutants are written (default: a temporary folder)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="batchcheck-mutations-") as temporary:
        corpus = Corpus(args.workdir or Path(temporary), real_models=args.real_models)
        names = [n for n in corpus.graphs if not args.graphs or any(w in n for w in args.graphs)]
        per_kind = {kind: Score() for kind in KINDS}
        graph_rows, misses = [], []
        for name in names:
            scores, clean_cells = score_graph(corpus, name, misses)
            total = Score()
            for kind, score in scores.items():
                per_kind[kind].add(score)
                total.add(score)
            graph_rows.append([f"`{name}`", *clean_cells, *total.cells()])
            print(f"scored {name} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    totals = Score()
    for score in per_kind.values():
        totals.add(score)
    kind_header = ["kind", "mutants", *(f"check {o}" for o in OUTCOMES), "lint found", "fix proven"]
    print(table(kind_header, [[f"`{kind}`", *score.cells()] for kind, score in per_kind.items()]
                + [["**total**", *totals.cells()]]))
    print()
    clean_passes = sum(row[1] == "yes" for row in graph_rows)
    print(f"clean graphs: {len(names)}, {clean_passes} pass, {sum(row[2] == 'yes' for row in graph_rows)} lint clean, "
          f"fix --fold-bn keeps {sum(row[3] == 'yes' for row in graph_rows)} of "
          f"{sum(row[3] != '–' for row in graph_rows)} invariant with equal outputs; {totals.mutants} mutants, "
          f"check right on {totals.check['right']} ({100 * totals.check['right'] / max(totals.mutants, 1):.0f}%), "
          f"in {time.perf_counter() - start:.0f} s")
    print()
    print(table(["graph", "clean pass", "lint clean", "fold-bn", *kind_header[1:]], graph_rows))
    if misses:
        print("\nnot right:")
        print("\n".join(f"- {miss}" for miss in misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
