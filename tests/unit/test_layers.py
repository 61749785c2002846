"""The layer order of docs/architecture.md, enforced: no module imports from a layer above its own.

The table is read from the page itself (the fenced block after the `<!-- layers` marker), so the page and
the rule cannot drift apart. Imports are found with `ast`, including lazy ones inside functions and those
under `TYPE_CHECKING`: an import that runs up the layers is a dependency whichever way it is spelt.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("netsim", "cni_plugins")


def layer_table(text: str, marker: str = "<!-- layers") -> list[tuple[str, list[str]]]:
    """[(layer, [module prefixes])], bottom layer first, from the fenced block after `marker`."""
    lines = text.split(marker, 1)[1].split("```", 2)[1].strip().splitlines()
    table = []
    for line in lines:
        name, *mods = line.split()
        table.append((name, mods))
    return table[::-1]


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> int | None:
    """Index of the layer whose longest dotted prefix names `module` (None: in no layer)."""
    best: tuple[int, int] | None = None
    for i, (_, prefixes) in enumerate(table):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return best[0] if best else None


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _is_module(name: str, root: Path) -> bool:
    p = root.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _statements(nodes: list[ast.stmt]):
    """Every statement, nested ones included (imports are statements; expressions need no visit)."""
    for node in nodes:
        yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            sub = getattr(node, name, None)
            if isinstance(sub, list):
                yield from _statements(sub)


def imports(source: str, module: str, is_package: bool, root: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of PACKAGES in `source`; `from X import y` counts as X.y
    when y is a submodule (`from netsim import naming` is netsim.naming, not the package's front door)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in _statements(ast.parse(source).body):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            for a in node.names:
                sub = f"{name}.{a.name}"
                found.append((node.lineno, sub if _is_module(sub, root) else name))
    return sorted({(n, m) for n, m in found if m.split(".")[0] in PACKAGES})


def upward_imports(root: Path, table: list[tuple[str, list[str]]],
                   within: str | None = None) -> tuple[list[str], list[str]]:
    """(violations, modules in no layer) over every module of PACKAGES under `root` (or of the package
    `within` only)."""
    bad, unplaced = [], []
    layers: dict[str, int | None] = {}
    for pkg in PACKAGES if within is None else (within.replace(".", "/"),):
        for path in sorted((root / pkg).rglob("*.py")):
            mod = module_name(path, root)
            own = layer_of(mod, table)
            if own is None:
                unplaced.append(mod)
                continue
            for line, target in imports(path.read_text(), mod, path.name == "__init__.py", root):
                if target not in layers:
                    layers[target] = layer_of(target, table)
                theirs = layers[target]
                if theirs is not None and theirs > own:
                    bad.append(f"{path.relative_to(root)}:{line}: {mod} ({table[own][0]}) imports "
                               f"{target} ({table[theirs][0]})")
    return bad, unplaced


def test_the_layer_table_is_on_the_page():
    names = [name for name, _ in layer_table(DOC.read_text())]
    assert names[0] == "foundation" and names[-1] == "cli"
    assert len(set(names)) == len(names)


def test_no_import_runs_up_the_layers():
    bad, unplaced = upward_imports(ROOT, layer_table(DOC.read_text()))
    assert unplaced == [], "modules in no layer: add them to the layer table in docs/architecture.md"
    assert bad == [], "imports that run up the layers (docs/architecture.md, Layers):\n" + "\n".join(bad)


def test_trace_is_split_by_concern():
    """Inside netsim.trace (docs/architecture.md, "Trace"): the shared vocabulary, the simulation, kernel
    observation, the report (assembly, comparison, text), the entry points; no import runs up."""
    table = layer_table(DOC.read_text(), "<!-- trace layers")
    bad, unplaced = upward_imports(ROOT, table, within="netsim.trace")
    assert unplaced == [], "modules of netsim.trace in no part: add them to the trace table"
    assert bad == [], "\n".join(bad)


# The clients of the front door act on a cluster only through netsim.Cluster: besides their own package they
# import the model (specs, manifests, selectors) and the front door, nothing of the layers in between.
CLIENTS = {"netsim.scenario": "netsim/scenario", "netsim.pytest_plugin": "netsim/pytest_plugin.py"}
CLIENT_MAY_IMPORT = ("netsim.model", "netsim.api")


def client_imports(root: Path) -> list[str]:
    bad = []
    for own, rel in CLIENTS.items():
        base = root / rel
        for path in sorted(base.rglob("*.py") if base.is_dir() else [base]):
            mod = module_name(path, root)
            for line, target in imports(path.read_text(), mod, path.name == "__init__.py", root):
                allowed = (own, *CLIENT_MAY_IMPORT)
                if target != "netsim" and not any(target == a or target.startswith(a + ".") for a in allowed):
                    bad.append(f"{path.relative_to(root)}:{line}: {mod} imports {target}")
    return bad


def test_scenarios_and_the_pytest_plugin_act_only_through_netsim_cluster():
    bad = client_imports(ROOT)
    assert bad == [], "use netsim.Cluster instead:\n" + "\n".join(bad)


@pytest.mark.parametrize("code", [
    "from netsim.api import Cluster",                 # a plain import
    "def f():\n    from netsim import api\n",         # a lazy one inside a function
    "from ..api import Cluster",                       # a relative one
])
def test_the_checker_sees_an_upward_import(tmp_path: Path, code: str):
    """The rule can fail: a model module importing the front door, spelt three ways, is reported."""
    for d in ("netsim", "netsim/model", "cni_plugins"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "__init__.py").write_text("")
    (tmp_path / "netsim" / "api.py").write_text("class Cluster: ...\n")
    (tmp_path / "netsim" / "model" / "bad.py").write_text(code)
    table = [("foundation", ["netsim.model", "cni_plugins"]), ("frontdoor", ["netsim"])]
    bad, unplaced = upward_imports(tmp_path, table)
    assert unplaced == []
    assert len(bad) == 1 and "netsim.model.bad (foundation) imports netsim.api (frontdoor)" in bad[0]
