"""The README's example outputs are what the commands print today (figures aside: they are measured)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_examples_are_current():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_changed_example_is_caught(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import examples
    finally:
        sys.path.remove(str(ROOT / "docs"))
    assert examples.comparable("max |diff| 2.26 (relative 0.45)") == examples.comparable("max |diff| 9.1 (relative 3e-05)")
    assert examples.comparable("before  12.5   1.0") == examples.comparable("before   2.5  10.0")  # columns follow widths
    assert examples.comparable("first divergent layer `A`") != examples.comparable("first divergent layer `B`")


def test_the_python_example_runs(case_model, tmp_path, monkeypatch, capsys):
    """The README's Python example, on a fixture with an `is_training` flag: it checks and writes the report."""
    import re

    text = (ROOT / "README.md").read_text()
    example = re.search(r"### From Python\n\n```python\n(.*?)```", text, re.S).group(1)
    path, _ = case_model("cond_v1")
    monkeypatch.chdir(tmp_path)
    exec(compile(example.replace('"model.pb"', repr(str(path))), "README.md", "exec"), {})
    assert '"verdict": "invariant"' in (tmp_path / "report.json").read_text()
