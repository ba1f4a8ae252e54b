"""The package's layering (docs/design.md section 3): who may import whom, and no import circles.

Read from the source (every import statement, also inside functions), so a lazy import cannot
hide an upward edge.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tfdphpe")
BASE = {"compat", "files", "keras_utils"}   # small top-level modules anyone may use
# package -> the tfdphpe packages it may import (besides itself and BASE): docs/design.md 3.
ALLOWED = {
    "codecs": set(),
    "models": {"codecs"},
    "privacy": set(),                        # knows nothing of pose, data sets or training
    "data": {"codecs", "privacy"},           # the data sampler calls privacy.sampling
    "evaluation": {"codecs", "data"},
    "export": {"codecs", "data", "models", "evaluation"},
    "inference": {"codecs", "data", "evaluation", "export"},
    "training": {"codecs", "data", "models", "privacy", "evaluation"},
}


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield module.removesuffix(".__init__"), path


def _imports(path, top_level_only=False):
    tree = ast.parse(open(path).read())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def _package(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_imports_only_what_the_design_allows():
    bad = []
    for module, path in _modules():
        own = _package(module)
        if own is None or own in BASE:
            continue
        assert own in ALLOWED, f"{own} is a new package: add it to ALLOWED and docs/design.md"
        for name in _imports(path):
            target = _package(name) if name.startswith("tfdphpe.") else None
            if target and target != own and target not in BASE and target not in ALLOWED[own]:
                bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(sorted(set(bad)))


def test_no_import_circle_between_modules():
    modules = dict(_modules())
    graph = {}
    for module, path in modules.items():
        # A package's __init__ importing its own submodules (and them importing siblings
        # through it) is how packages are built, not a circle between two jobs.
        targets = {n for n in _imports(path, top_level_only=True) if n in modules}
        graph[module] = {t for t in targets if t != module and not (
            t.startswith(module + ".") or module.startswith(t + "."))}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
