"""Every module with logic has tests: a mirror file (tests/<package>/test_<module>.py), or a
"Tests:" line in its docstring naming the files that test it (each must exist), or a
"Not tested:" line saying why."""

import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _without_mirror():
    for path in sorted(glob.glob(os.path.join(ROOT, "tfdphpe", "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, os.path.join(ROOT, "tfdphpe"))
        folder, name = os.path.split(rel)
        if name == "__init__.py":
            continue
        if not os.path.exists(os.path.join(ROOT, "tests", folder, f"test_{name}")):
            yield os.path.relpath(path, ROOT), ast.get_docstring(ast.parse(open(path).read()))


def test_every_module_names_its_tests():
    problems = []
    for path, doc in _without_mirror():
        doc = doc or ""
        named = re.search(r"^Tests: (.+?)(?:\n\n|\Z)", doc, re.M | re.S)
        if named:
            missing = [t for t in re.findall(r"tests/[\w/]+\.py", named.group(1))
                       if not os.path.exists(os.path.join(ROOT, t))]
            if missing:
                problems.append(f"{path}: names missing test files {missing}")
        elif not re.search(r"^Not tested: \S", doc, re.M):
            problems.append(f"{path}: no tests/.../test_<module>.py, no 'Tests:' line")
    assert not problems, "\n".join(problems)
