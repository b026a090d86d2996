"""The documentation (README.md and docs/*.md): its example outputs are what the commands print today (figures
aside: they are measured), its Python example runs, and its links lead to pages and headings that exist."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCED = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#+ (.+)$", re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _examples():
    """docs/examples.py as a module."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import examples
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return examples


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(page: Path) -> list[str]:
    """The links on `page` (outside code blocks) to a file that does not exist or a heading it lacks."""
    broken = []
    for target in LINK.findall(FENCED.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # a web address: no network here
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{page.name}: {target}: no such file")
        elif fragment and fragment not in {anchor(h) for h in HEADING.findall(FENCED.sub("", linked.read_text()))}:
            broken.append(f"{page.name}: {target}: no heading `#{fragment}` in {linked.name}")
    return broken


def test_examples_on_every_page_are_current():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_changed_example_is_caught():
    examples = _examples()
    assert examples.comparable("max |diff| 2.26 (relative 0.45)") == examples.comparable("max |diff| 9.1 (relative 3e-05)")
    assert examples.comparable("before  12.5   1.0") == examples.comparable("before   2.5  10.0")  # columns follow widths
    assert examples.comparable("first divergent layer `A`") != examples.comparable("first divergent layer `B`")


def test_stale_unknown_and_unshown_examples_are_reported_on_any_page():
    examples = _examples()
    block = "<!-- example {} -->\n```\n{}```\n<!-- /example -->\n"
    fresh = {"lint": "$ batchcheck lint m.pb\nerror `A`\n", "explain": "$ batchcheck explain m.pb\nnode `A`\n",
             "fix": "$ batchcheck fix m.pb\nPASS\n"}
    texts = {"README.md": "# x\n\n" + block.format("lint", fresh["lint"]),
             "docs/a.md": block.format("explain", "$ batchcheck explain m.pb\nnode `B`\n") + block.format("typo", "")}
    assert examples.problems(texts, fresh) == [
        "docs/a.md: example `explain` is out of date; run `python docs/examples.py`",
        "docs/a.md: example `typo` is not one of docs/examples.py's EXAMPLES (lint, explain, fix)",
        "example `fix` is on no page (README.md, docs/a.md); add its block or remove it from EXAMPLES"]
    assert ROOT / "docs" / "diagnose-and-repair.md" in examples.pages()


def test_the_python_example_runs(case_model, tmp_path, monkeypatch, capsys):
    """The Python example, on a fixture with an `is_training` flag: it checks and writes the report."""
    found = [(page, m.group(1)) for page in _examples().pages()
             for m in re.finditer(r"^#+ From Python\n\n```python\n(.*?)```", page.read_text(), re.M | re.S)]
    assert len(found) == 1, f"one `From Python` example expected, found {len(found)}"
    page, example = found[0]
    path, _ = case_model("cond_v1")
    monkeypatch.chdir(tmp_path)
    exec(compile(example.replace('"model.pb"', repr(str(path))), str(page), "exec"), {})
    assert '"verdict": "invariant"' in (tmp_path / "report.json").read_text()


def test_links_between_pages_resolve():
    assert [problem for page in _examples().pages() for problem in broken_links(page)] == []


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "a.md").write_text("# A page\n\n## Exit codes\n\n```\n[not a link](gone.md)\n```\n")
    (tmp_path / "b.md").write_text("[ok](a.md#exit-codes) [no file](gone.md) [no heading](a.md#a-pages) "
                                   "[here](#b) [web](https://example.org/x)\n\n# B\n")
    assert broken_links(tmp_path / "a.md") == []
    assert broken_links(tmp_path / "b.md") == ["b.md: gone.md: no such file",
                                               "b.md: a.md#a-pages: no heading `#a-pages` in a.md"]
    assert anchor("Diagnose: `inspect`, `lint`, `explain`") == "diagnose-inspect-lint-explain"


def test_the_index_lists_every_page():
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / target.partition("#")[0]).resolve() for target in LINK.findall(index.read_text())}
    unlisted = [page.name for page in _examples().pages() if page.parent == index.parent and page != index
                and page.resolve() not in linked]
    assert unlisted == [], f"docs/README.md does not link {', '.join(unlisted)}"
    assert "docs/README.md" in (ROOT / "README.md").read_text()
