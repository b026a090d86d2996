"""The mutation corpus (`fixtures/mutation_corpus.py`): every clean graph with a known batch dependence injected
at a seeded live site. `check` must name the injected node with its cause, `lint` must find it statically and
`fix` must undo it (the fixed graph's outputs equal the clean graph's); each clean graph passes, lint finds no
batch dependence in it, and `fix --fold-bn` keeps it passing with the same outputs.

A sample (6 mutants over 3 small graphs) runs in the default suite; the rest is marked `corpus`, kept out of the
default run, and `make test-corpus` runs all of it. Where lint cannot see a mutant statically, the test is a
strict xfail naming why: it flags when that changes.
"""
from __future__ import annotations

import pytest

from conftest import REAL_MODELS
from fixtures.mutation_corpus import (
    FIXABLE_KINDS,
    NOT_APPLICABLE,
    REAL_GRAPHS,
    Corpus,
    fixture_graphs,
    found_at_culprit,
    lint_errors,
    lint_finds_batch_dependence,
)
from fixtures.mutations import KINDS

# In the default suite: 6 mutants over 3 small graphs, every kind, every command.
SAMPLE = {("fixture/mobilenet_v1", "bn_training"), ("fixture/mobilenet_v1", "batch_mean"),
          ("fixture/dense_bn", "bn_moments"), ("fixture/grayscale", "dropout"),
          ("fixture/grayscale", "batch_size"), ("fixture/grayscale", "fixed_row")}
SAMPLE_GRAPHS = {graph for graph, _ in SAMPLE}
# (graph, kind) lint cannot see statically, and why
_KNOWN_BATCH = "the batch is a known 12 in every static shape: no batch axis to find"
LINT_BLIND = {
    ("fixture/batch_only_12_inference", "batch_mean"): _KNOWN_BATCH,
    ("fixture/batch_only_12_inference", "fixed_row"): _KNOWN_BATCH,
    ("real/utensor_cifar10_cnn_rate.pb", "fixed_row"): "the site `dropout/mul` has no static shape (TensorFlow's "
                                                       "shape inference loses the rank at the unshaped `rate`)",
}


def _params(aspect: str, kinds: tuple[str, ...] | None = KINDS) -> list:
    """(graph, kind) for every graph and kind, or (graph,) with `kinds` None: the sample as it is, the rest
    marked `corpus`; what lint cannot see xfails (strict); real graphs skip without ../shared/real-models."""
    params = []
    for graph in [*REAL_GRAPHS, *fixture_graphs()]:
        for kind in kinds or (None,):
            marks = [pytest.mark.xdist_group(graph.name)]
            in_sample = graph.name in SAMPLE_GRAPHS if kind is None else (graph.name, kind) in SAMPLE
            if not in_sample:
                marks.append(pytest.mark.corpus)
            if graph.is_real:
                marks.append(pytest.mark.skipif(not (REAL_MODELS / "MANIFEST.md").exists(),
                                                reason="../shared/real-models is not beside this checkout"))
            if aspect == "lint" and (graph.name, kind) in LINT_BLIND:
                reason = f"lint cannot see it: {LINT_BLIND[graph.name, kind]}"
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            values, name = ((graph.name,), graph.name) if kind is None else ((graph.name, kind), f"{graph.name}-{kind}")
            params.append(pytest.param(*values, marks=marks, id=name))
    return params


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("mutations"), real_models=REAL_MODELS)


def _mutant(corpus: Corpus, graph: str, kind: str):
    if (graph, kind) in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[graph, kind])
    mutant = corpus.mutant(graph, kind)
    if mutant is None:
        pytest.skip(f"no live site for {kind} in {graph}")
    return mutant


@pytest.mark.parametrize("graph", _params("clean", None))
def test_clean_graph_passes_and_lints_clean(graph, corpus):
    clean = corpus.clean(graph)
    assert (clean.run.code, clean.run.report["verdict"]) == (0, "invariant"), clean.run.output
    assert not lint_finds_batch_dependence(corpus.lint(clean.path, clean))


@pytest.mark.parametrize("graph", _params("fold", None))
def test_fold_pass_keeps_clean_graph_and_its_outputs(graph, corpus):
    if not corpus.graphs[graph].fix:
        pytest.skip("fix's latency figures run batches of 32: too costly on this graph")
    fold = corpus.fold(graph)
    assert fold.run.code == 0 and fold.run.report["proof"]["verdict"] == "invariant", fold.run.output
    assert fold.outputs_equal, f"max |folded − clean| {fold.max_diff} > {fold.allowed}"


@pytest.mark.parametrize("graph,kind", _params("check"))
def test_check_names_the_injected_node_and_cause(graph, kind, corpus):
    mutant = _mutant(corpus, graph, kind)
    run = corpus.check(mutant)
    first = (run.report or {}).get("first_divergence") or {}
    assert found_at_culprit(mutant.mutation, run) == "right", (
        f"{mutant.mutation}: exit {run.code}, {run.report and run.report['verdict']} at {first.get('node')} "
        f"({first.get('cause')})\n{run.output}")


@pytest.mark.parametrize("graph,kind", _params("lint"))
def test_lint_finds_the_injected_node(graph, kind, corpus):
    mutant = _mutant(corpus, graph, kind)
    errors = lint_errors(corpus.lint(mutant.path, mutant.clean))
    assert (mutant.mutation.cause, mutant.mutation.culprit) in errors, f"{mutant.mutation}: lint errors {errors}"


@pytest.mark.parametrize("graph,kind", _params("fix", FIXABLE_KINDS))
def test_fix_undoes_the_mutation(graph, kind, corpus):
    mutant = _mutant(corpus, graph, kind)
    if not mutant.clean.graph.fix:
        pytest.skip("fix's latency figures run batches of 32: too costly on this graph")
    fixed = corpus.fix(mutant)
    assert fixed.run.code == 0 and fixed.run.report["proof"]["verdict"] == "invariant", fixed.run.output
    if mutant.mutation.restorable:
        assert fixed.outputs_equal, f"max |fixed − clean| {fixed.max_diff} > {fixed.allowed}"


def test_sites_carry_the_image_data(corpus):
    """A tensor compared with a batch axis but alike in every row (a dropout mask fed off) is never a site:
    keeping its row 0 or taking its batch mean would change nothing."""
    from fixtures.mutations import candidate_sites, live_tensors

    clean = corpus.clean("fixture/keep_prob_1")
    compared = {t["tensor"] for t in clean.run.report["tensors"] if t["status"] == "ok" and t["batch_axis"] == 0}
    live = live_tensors(clean.run.report, clean.graph_def)
    assert "dropout/Floor:0" in compared - live and "dropout/mul:0" in live
    assert "dropout/mul:0" in candidate_sites(clean.graph_def, "fixed_row", live)
