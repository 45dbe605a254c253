"""The public surface of src/lkm (issue 14): every public module (no ``_`` in its path but
``__init__``) has a titled docstring and an ``__all__``, and every name its ``__all__`` lists
exists in it.

The oracle is Python's own parse of each file (ast): a name exists when the module defines it
at top level (def, class, assignment, import, also under ``if``/``try``); the two PEP 562
facades (a module-level ``__getattr__``: ``lkm.module``, ``lkm.depmod``) are imported and
asked instead.  The checker is tried on made-up modules too, so that it can fail."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from support import ROOT

SRC = ROOT / "src" / "lkm"


def public_modules() -> list[Path]:
    out = []
    for p in sorted(SRC.rglob("*.py")):
        parts = p.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__main__" or any(x.startswith("_") and x != "__init__" for x in parts):
            continue
        out.append(p)
    return out


def _defined(body: list[ast.stmt], names: set[str]) -> None:
    for n in body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Assign):
            for t in n.targets:
                names.update(
                    e.id for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)
                )
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
            names.add(n.target.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.If):
            _defined(n.body, names)
            _defined(n.orelse, names)
        elif isinstance(n, ast.Try):
            _defined(n.body, names)
            for h in n.handlers:
                _defined(h.body, names)


def problems(text: str, module: str | None = None) -> list[str]:
    """What is wrong with one module's surface (``module``: its name, to import a PEP 562
    facade)."""
    tree = ast.parse(text)
    out = []
    doc = ast.get_docstring(tree)
    if not doc or not doc.splitlines()[0].strip():
        out.append("no titled module docstring")
    listed = None
    for n in tree.body:
        target = (
            n.targets[0] if isinstance(n, ast.Assign) else n.target if isinstance(n, ast.AnnAssign) else None
        )
        if isinstance(target, ast.Name) and target.id == "__all__":
            listed = ast.literal_eval(n.value) if n.value is not None else None
    if listed is None:
        return [*out, "no __all__"]
    defined: set[str] = set()
    _defined(tree.body, defined)
    if "__getattr__" in defined and module is not None:
        mod = importlib.import_module(module)
        missing = [x for x in listed if not hasattr(mod, x)]
    else:
        missing = [x for x in listed if x not in defined]
    out += [f"__all__ names {x!r}, which it does not define" for x in missing]
    if len(set(listed)) != len(listed):
        out.append("__all__ lists a name twice")
    return out


def test_every_public_module_has_docstring_and_all() -> None:
    mods = public_modules()
    assert len(mods) > 150  # the walk found the package
    bad = {}
    for p in mods:
        name = ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        found = problems(p.read_text(), name)
        if found:
            bad[str(p.relative_to(ROOT))] = found
    assert bad == {}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('"""T."""\n\nx = 1\n', ["no __all__"]),
        ('x = 1\n__all__ = ["x"]\n', ["no titled module docstring"]),
        ('"""T."""\n\n__all__ = ["x", "y"]\nx = 1\n', ["__all__ names 'y', which it does not define"]),
        ('"""T."""\n\nfrom a import b as y\n__all__ = ["x", "y"]\ndef x(): pass\n', []),
        (
            '"""T."""\n\nif C:\n    class x: pass\n__all__: list[str] = ["x", "x"]\n',
            ["__all__ lists a name twice"],
        ),
    ],
)
def test_checker_catches(text: str, want: list[str]) -> None:
    assert problems(text) == want
