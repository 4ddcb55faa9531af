"""Every tool of the example bank (notebooks/bank/) through the real runner and the contract normalizer: its
samples' expectations, its own skr-test cells, and the content of what it produces (DOCX, PDF, XLSX, TXT)."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import openpyxl
import pytest
from docx import Document
from pypdf import PdfReader

from runner_kernel.authoring.notebook_format import check_expect, read_tool_notebook, run_test_cells
from skriptoteket_ext.contract import normalize_result, validate_input_schema, validate_settings_schema

from .harness import run_samples

pytestmark = pytest.mark.timeout(300)

BANK = Path(__file__).resolve().parents[2] / "notebooks" / "bank"
NOTEBOOKS = sorted(BANK.glob("*.ipynb"))
SLUGS = [p.stem for p in NOTEBOOKS]
PROFESSIONS = {"teacher", "special-needs-educator", "school-administrator", "principal", "shared"}
CATEGORIES = {"lesson-planning", "mentoring", "administration", "other"}
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FIELD_KINDS = {"string", "text", "integer", "number", "boolean", "enum", "multi_enum", "file"}

_runs: dict = {}  # slug -> SampleRuns, so the content tests below reuse the sample runs


async def sample_runs(runner, slug, tmp_path_factory):
    if slug not in _runs:
        tool = read_tool_notebook(BANK / f"{slug}.ipynb")
        _runs[slug] = await run_samples(runner, tool, tmp_path_factory.mktemp(slug))
    return _runs[slug]


def test_the_bank_has_the_promised_tools():
    assert {"group-maker", "guardian-emails", "markdown-to-word", "html-to-pdf", "demo-quiz", "demo-inputs",
            "demo-table-order"} <= set(SLUGS)
    curated = {p.stem for p in NOTEBOOKS if read_tool_notebook(p).meta["curated"]}
    assert {"group-maker", "guardian-emails", "markdown-to-word", "html-to-pdf"} <= curated
    assert not {s for s in SLUGS if s.startswith("demo-")} & curated


@pytest.mark.parametrize("slug", SLUGS)
def test_notebook_metadata_and_schemas(slug):
    tool = read_tool_notebook(BANK / f"{slug}.ipynb")
    meta = tool.meta
    assert meta["slug"] == slug and SLUG_RE.match(slug)
    assert meta["title"].strip() and 10 <= len(meta["summary"]) <= 300
    assert meta["professions"] and set(meta["professions"]) <= PROFESSIONS
    assert meta["categories"] and set(meta["categories"]) <= CATEGORIES
    assert validate_input_schema(tool.input_schema) == []
    assert validate_settings_schema(tool.settings_schema) == []
    assert tool.instructions and len(tool.instructions) > 80
    assert tool.samples and tool.tests
    compile(tool.source, f"{slug}.py", "exec")
    assert "def run_tool(input_dir, output_dir)" in tool.source


def test_the_inputs_demo_covers_every_field_kind_and_option():
    tool = read_tool_notebook(BANK / "demo-inputs.ipynb")
    assert {f["kind"] for f in tool.input_schema} == FIELD_KINDS
    used = {key for f in tool.input_schema for key in f}
    assert {"required", "default", "help", "placeholder", "min", "max", "max_length", "accept", "options"} <= used


def test_the_group_maker_has_saved_classes_in_settings():
    tool = read_tool_notebook(BANK / "group-maker.ipynb")
    assert [f["name"] for f in tool.settings_schema] == ["classes"]
    assert any(s["settings"] for s in tool.samples)


@pytest.mark.parametrize("slug", SLUGS)
async def test_samples_and_notebook_tests(slug, bank_runner, tmp_path_factory):
    tool = read_tool_notebook(BANK / f"{slug}.ipynb")
    runs = await sample_runs(bank_runner, slug, tmp_path_factory)
    assert runs.problems == [], (runs.problems, runs.logs)
    assert set(runs.results) == {s["name"] for s in tool.samples}
    failures = run_test_cells(tool, runs.results, runs.artifacts, runs.runs)
    assert failures == [], failures


# ------------------------------------------------------------------------- content checks, beside the notebooks'


async def test_table_keeps_10_before_2(bank_runner, tmp_path_factory):
    runs = await sample_runs(bank_runner, "demo-table-order", tmp_path_factory)
    table = runs.results["order"]["outputs"][1]
    assert [c["key"] for c in table["columns"]] == ["10", "2"]
    assert table["rows"][0] == [6, 3]
    again = normalize_result({"contract_version": 2, "status": "succeeded", "error_summary": None,
                              "outputs": [table | {"rows": [{"2": 1, "10": 2}]}]})
    assert [c["key"] for c in again["outputs"][0]["columns"]] == ["10", "2"] and again["outputs"][0]["rows"] == [[2, 1]]


async def test_group_maker_xlsx(bank_runner, tmp_path_factory):
    runs = await sample_runs(bank_runner, "group-maker", tmp_path_factory)
    book = openpyxl.load_workbook(io.BytesIO(runs.artifacts["xlsx-8a-5-groups"]["grupper.xlsx"]))
    grid = list(book["Grupper"].iter_rows(min_row=2, values_only=True))
    assert grid[0] == ("Grupp 1", "Grupp 2", "Grupp 3", "Grupp 4", "Grupp 5")
    names = [cell for row in grid[1:] for cell in row if cell]
    source = openpyxl.load_workbook(BANK / "samples" / "klasslista-8a.xlsx").active
    expected = set()
    for (pupil,) in source.iter_rows(min_row=2, max_col=1, values_only=True):
        last, comma, first = pupil.partition(", ")
        expected.add(f"{first} {last}" if comma else pupil)
    assert sorted(names) == sorted(expected) and len(names) == 27
    table_rows = runs.results["xlsx-8a-5-groups"]["outputs"][1]["rows"]
    for column, row in enumerate(table_rows):
        assert sorted(row[2].split(", ")) == sorted(r[column] for r in grid[1:] if r[column])


async def test_guardian_emails_txt(bank_runner, tmp_path_factory):
    runs = await sample_runs(bank_runner, "guardian-emails", tmp_path_factory)
    text = runs.artifacts["two-classes"]["epostadresser.txt"].decode("utf-8")
    assert text.endswith("\n") and "\n" not in text.rstrip("\n")
    addresses = text.strip().split("; ")
    # Independently: every address in a guardian column of the two samples, lowercased, once.
    import csv
    expected = set()
    with open(BANK / "samples" / "vardnadshavare-7b.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for column in ("Vårdnadshavare 1 e-post", "Vårdnadshavare 2 e-post"):
                expected |= {a.lower() for a in re.findall(r"[\w.+-]+@[\w.-]+\.\w+", row[column])}
    sheet = openpyxl.load_workbook(BANK / "samples" / "vardnadshavare-8a.xlsx").active
    for _, _, vh1, vh2, _ in sheet.iter_rows(min_row=2, values_only=True):
        expected |= {a.lower() for a in (vh1, vh2) if a}
    assert set(addresses) == expected and len(addresses) == len(expected)


async def test_markdown_to_word_docx(bank_runner, tmp_path_factory):
    runs = await sample_runs(bank_runner, "markdown-to-word", tmp_path_factory)
    doc = Document(io.BytesIO(runs.artifacts["weekly-letter"]["veckobrev-v12.docx"]))
    headings = [p.text for p in doc.paragraphs if p.style.name.startswith("Heading")]
    assert headings == ["Veckobrev för 7B – vecka 12", "Det här har vi gjort", "Viggo" * 0 + "Viktiga datum", "Läxor"]
    body = "\n".join(p.text for p in doc.paragraphs)
    assert "Karin Ek, mentor 7B" in body and "**" not in body and "|" not in body
    assert doc.tables[0].rows[3].cells[0].text == "Svenska"


async def test_html_to_pdf_pdf(bank_runner, tmp_path_factory):
    runs = await sample_runs(bank_runner, "html-to-pdf", tmp_path_factory)
    assert runs.runs["file-a4"][0]["artifacts"] == []  # the preview step makes no PDF
    pdf = PdfReader(io.BytesIO(runs.artifacts["file-a4"]["Inbjudan föräldramöte.pdf"]))
    text = pdf.pages[0].extract_text()
    assert "Anmäl dig senast fredag 21 mars" in text and "Välkomna och presentation" in text
    assert runs.artifacts["pasted-landscape"]["schema-liggande.pdf"].startswith(b"%PDF-")


# ---------------------------------------------------------------------------- the checks themselves can fail


async def test_a_broken_expectation_or_test_cell_is_caught(bank_runner, tmp_path_factory):
    runs = await sample_runs(bank_runner, "demo-table-order", tmp_path_factory)
    payload = runs.results["order"]
    assert check_expect({"status": "failed", "outputs_kinds": ["table"], "artifacts": ["x.pdf"]}, payload) == [
        "status is 'succeeded', expected 'failed'",
        "output kinds are ['markdown', 'table'], expected ['table']",
        "artifacts are [], expected ['x.pdf']",
    ]
    tool = read_tool_notebook(BANK / "demo-table-order.ipynb")
    broken = copy.deepcopy(tool)
    broken.tests = ['assert results["order"]["outputs"][1]["columns"][0]["key"] == "2", "order lost"']
    failures = run_test_cells(broken, runs.results, runs.artifacts, runs.runs)
    assert len(failures) == 1 and "order lost" in failures[0]

    broken.source = tool.source.replace('{"key": "10", "label": "Uppgift 10"}, {"key": "2", "label": "Uppgift 2"}',
                                        '{"key": "2", "label": "Uppgift 2"}, {"key": "10", "label": "Uppgift 10"}')
    assert broken.source != tool.source
    broken.tests = tool.tests
    swapped = await run_samples(bank_runner, broken, tmp_path_factory.mktemp("swapped"))
    assert swapped.problems == []
    assert run_test_cells(broken, swapped.results, swapped.artifacts, swapped.runs)  # the notebook's test fails
