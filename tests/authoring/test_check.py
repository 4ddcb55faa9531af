"""``skriptoteket check``: passes on a good notebook (the starter template), fails with file, cell, JSON pointer and
message on broken copies (a bad schema; a sample whose run fails). No hub: the runner runs locally."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from skriptoteket_ext import check

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
STARTER = ROOT / "notebooks" / "starter.ipynb"


def copy_starter(directory: Path, name: str, edit=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "samples").mkdir(exist_ok=True)
    shutil.copy(ROOT / "notebooks" / "samples" / "starter-class-list.csv", directory / "samples")
    node = nbformat.read(str(STARTER), as_version=4)
    if edit:
        edit(node)
    path = directory / name
    nbformat.write(node, str(path))
    return path


def tagged(node, tag):
    return next(c for c in node.cells if tag in (c.metadata.get("tags") or []))


def bad_schema(node):
    cell = tagged(node, "skr-input-schema")
    cell.source = '%%skr_input_schema\n[{"name": "mode", "label": "Mode", "kind": "enum"}]'


def failing_sample(node):
    cell = tagged(node, "skr-source")
    cell.source = cell.source.replace("names = read_names(list_input_files())",
                                      "names = read_names(list_input_files())\n    names = names[10]")


def test_check_good_and_broken_notebooks(tmp_path):
    good = copy_starter(tmp_path / "bank", "good.ipynb")
    copy_starter(tmp_path / "bank", "bad-schema.ipynb", bad_schema)
    copy_starter(tmp_path / "bank", "failing-sample.ipynb", failing_sample)

    out = io.StringIO()
    status = check.main([str(tmp_path / "bank")], out=out)
    text = out.getvalue()
    print(text)
    assert status == 1
    lines = text.splitlines()
    schema = [ln for ln in lines if "bad-schema.ipynb" in ln]
    assert schema and "cell 9, /input_schema/0/options:" in schema[0], schema
    failing = [ln for ln in lines if "failing-sample.ipynb" in ln]
    assert failing and "cell 12, /samples/0/expect: sample 'class-7b': status is 'failed'" in failing[0], failing
    assert "IndexError" in text  # the traceback's last line is in the report
    assert not any("good.ipynb" in ln for ln in lines), text
    assert "3 notebook(s)" in lines[-1] and "FAILED" in lines[-1]

    # the command line, as an author's CI would call it
    done = subprocess.run([sys.executable, "-m", "skriptoteket_ext.cli", "check", str(good)],
                          capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problem(s)" in done.stdout and "ok" in done.stdout
