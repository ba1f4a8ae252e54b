"""The export modules import one another without a circle (house-keeping issue #23)."""

import ast
import os

import tfdphpe.export

PACKAGE = os.path.dirname(tfdphpe.export.__file__)


def _imports(module):
    """tfdphpe.export modules that ``module`` imports, at the top or inside functions."""
    tree = ast.parse(open(os.path.join(PACKAGE, module + ".py")).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tfdphpe.export."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names
                         if a.name.startswith("tfdphpe.export."))
    return found


def test_no_import_circle_among_export_modules():
    modules = [f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py") and f != "__init__.py"]
    graph = {m: _imports(m) for m in modules}
    done, path = set(), []

    def visit(m):
        assert m not in path, f"import circle: {' -> '.join(path + [m])}"
        if m in done:
            return
        path.append(m)
        for n in graph.get(m, ()):
            visit(n)
        path.pop()
        done.add(m)

    for m in modules:
        visit(m)
    assert "tflite" not in graph["metadata"] and "latency" not in graph["tflite"]


def test_public_names_are_importable():
    for name in tfdphpe.export.__all__:
        assert getattr(tfdphpe.export, name) is not None, name
