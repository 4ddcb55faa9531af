"""Every code the contract emits has an English and a Swedish message that formats with its params."""

import json
import re
from pathlib import Path

import skriptoteket_ext.contract as contract_pkg
from skriptoteket_ext.contract import Issue

LOCALE = Path(contract_pkg.__file__).parent.parent / "locale"
SOURCE = Path(contract_pkg.__file__).parent


def load(lang):
    return json.loads((LOCALE / f"contract.{lang}.json").read_text(encoding="utf-8"))


def codes_in_source():
    found = set()
    for path in SOURCE.glob("*.py"):
        found |= set(re.findall(r'"(contract\.[a-z_]+\.[a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


def test_catalogs_have_the_same_keys():
    assert set(load("en")) == set(load("sv"))


def test_every_code_in_the_source_is_in_the_catalog():
    codes = codes_in_source()
    assert len(codes) > 40
    assert codes <= set(load("en"))


def test_templates_use_the_same_placeholders_in_both_languages():
    en, sv = load("en"), load("sv")
    for key in en:
        assert set(re.findall(r"{(\w+)}", en[key])) == set(re.findall(r"{(\w+)}", sv[key])), key


def test_issue_translates():
    issue = Issue("/n", "contract.input.too_small", {"label": "Antal", "min": 2})
    assert issue.message == "“Antal” must be at least 2."
    assert issue.translated("sv") == "”Antal” måste vara minst 2."
    assert issue.to_dict("sv") == {"path": "/n", "code": "contract.input.too_small",
                                   "params": {"label": "Antal", "min": 2}, "message": "”Antal” måste vara minst 2."}
