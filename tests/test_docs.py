"""References in code and docs point somewhere real: "DESIGN n" to a section of docs/design.md,
a docs file name to a file, and "docs/<name>.md section n" to a section of it."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DESIGN_REF = re.compile(r"\bDESIGN (\d+[a-z]?(?:\.\d+)?)")
DOC_REF = re.compile(r"\bdocs/([\w-]+\.md)(?:\)?,? sections? (\d+[a-z]?))?")
HEADING = re.compile(r"^#{2,4} (\d+[a-z]?(?:\.\d+)?)\.? ", re.M)


def _sources():
    patterns = ["tfdphpe/**/*.py", "scripts/*.py", "tests/**/*.py", "configs/**/*.flags",
                "docs/*.md", "README.md", "Makefile"]
    for pattern in patterns:
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


def _sections(doc: str) -> set[str]:
    with open(os.path.join(ROOT, "docs", doc), encoding="utf-8") as f:
        return set(HEADING.findall(f.read()))


def test_every_design_reference_names_a_section_of_docs_design():
    sections = _sections("design.md")
    missing = [f"{path}: DESIGN {ref}" for path, text in _sources()
               for ref in DESIGN_REF.findall(text) if ref not in sections]
    assert not missing, "\n".join(missing)


def test_every_docs_reference_names_a_file_and_section_that_exist():
    missing = []
    for path, text in _sources():
        for doc, section in DOC_REF.findall(text):
            if not os.path.exists(os.path.join(ROOT, "docs", doc)):
                missing.append(f"{path}: docs/{doc}")
            elif section and section not in _sections(doc):
                missing.append(f"{path}: docs/{doc} section {section}")
    assert not missing, "\n".join(missing)
