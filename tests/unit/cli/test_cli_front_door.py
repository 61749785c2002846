"""The CLI acts on clusters through the front door alone (issue #16 item 4): a module of `netsim/cli/` may
import `netsim.api` / `netsim` (netsim.Cluster), `netsim.reports` (the front door's renderers of its
results), other `netsim.cli` modules, and the pure modules of docs/architecture.md's foundation layer
(the model, the kernel tools' text readers, preflight checks) plus kubectl's table printers; and the
scenario format, runner and reports (the clients layer, which itself acts only through netsim.Cluster and is
given the CLI's). Anything else (lifecycle, daemonctl, the store, a kernel, trace, topology, ...) would
act on a cluster beside netsim.Cluster, where an injected kernel or store cannot reach it."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_layers import imports

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / "netsim" / "cli"

ALLOWED = ("netsim", "netsim.api", "netsim.reports", "netsim.cli", "netsim.model", "netsim.parsers",
           "netsim.preflight", "netsim.printers", "netsim.scenario.format", "netsim.scenario.report",
           "netsim.scenario.runner",
           # A sleep woken by inotify (the warm CLI process watches its own modules): it acts on nothing.
           "netsim.dirwatch")


def _allowed(module: str) -> bool:
    return any(module == a or (a not in ("netsim",) and module.startswith(a + ".")) for a in ALLOWED)


def cli_imports() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(CLI.glob("*.py")):
        module = "netsim.cli." + path.stem if path.stem != "__init__" else "netsim.cli"
        for line, imported in imports(path.read_text(), module, path.stem == "__init__", ROOT):
            out.append((path.name, line, imported))
    return out


def test_cli_modules_import_only_the_front_door_and_pure_modules():
    found = cli_imports()
    assert any(m == "netsim.api" for _, _, m in found)  # the reader sees the imports at all
    bad = [f"netsim/cli/{f}:{line}: {m}" for f, line, m in found if not _allowed(m)]
    assert bad == [], "CLI modules acting on clusters beside netsim.Cluster:\n" + "\n".join(bad)


def test_the_allow_list_refuses_what_bypasses_the_front_door():
    for m in ("netsim.lifecycle", "netsim.daemonctl", "netsim.daemon", "netsim.store", "netsim.kernel.linux",
              "netsim.trace.api", "netsim.topology", "netsim.controlplane.events", "netsim.naming"):
        assert not _allowed(m), m
    for m in ("netsim.api", "netsim.model.errors", "netsim.cli.front", "netsim.printers"):
        assert _allowed(m), m
