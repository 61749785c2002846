"""What a `netsim` verb imports (issue #16 item 2): every command is a new Python process, and `netsim apply`
of one object was dominated by importing the whole package (the daemon with every agent, the API server's
PKI code, rich, the probe engine, ...) before it wrote anything. A verb now imports its own module alone
(netsim.cli.main.LAZY_VERBS), and the front door (netsim.api) imports what only some of its methods need
inside those methods. Checked in a fresh interpreter (sys.modules of this one holds whatever other tests
imported); nothing is timed."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from netsim.cli.main import LAZY_VERBS, cli

ROOT = Path(__file__).resolve().parents[3]

# Never needed to write objects and wait for the daemon: packet tools, graph and plotting libraries, the
# daemon's own wiring and agents, tracing and probing, policy models, the API server's PKI, terminal UI.
HEAVY = ("scapy", "pyroute2", "networkx", "matplotlib", "PIL", "rich", "cryptography", "netsim.daemon",
         "netsim.agents", "netsim.node", "netsim.trace", "netsim.topology", "netsim.draw", "netsim.probe",
         "netsim.policy", "netsim.proxy.render", "netsim.fabric", "netsim.hostnet", "netsim.etcd.store",
         "netsim.etcd.client", "netsim.controlplane.deployment", "netsim.dns")

PROBE = """
import json, sys
import click
from netsim.cli.main import cli
ctx = click.Context(cli)
command = cli
for word in sys.argv[1:]:
    command = command.get_command(ctx, word)
    assert command is not None, word
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(*verb: str) -> set[str]:
    """The modules loaded once `netsim VERB` is resolved to its command (what running it imports first)."""
    out = subprocess.run([sys.executable, "-c", PROBE, *verb], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(json.loads(out))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_apply_imports_none_of_the_heavy_modules():
    modules = loaded_by("apply")
    assert "netsim.cli.resources" in modules and "netsim.api" in modules  # the probe sees the verb's imports
    assert heavy_in(modules) == []


def test_a_verb_imports_its_own_module_not_the_other_verbs():
    modules = loaded_by("apply")  # netsim.cli.resources, and netsim.cli.get for its object selection
    others = {m for m in LAZY_VERBS.values() if m not in ("netsim.cli.resources", "netsim.cli.get")}
    assert len(others) >= 10 and sorted(others & modules) == []


def test_the_front_door_alone_imports_none_of_the_heavy_modules():
    out = subprocess.run([sys.executable, "-c", "import json, sys, netsim.api; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    assert heavy_in(set(json.loads(out))) == []


def test_the_lazy_table_names_each_module_s_commands_exactly():
    """A verb added to a module's COMMANDS but not to LAZY_VERBS would never be found: the two must agree."""
    for module_name in sorted(set(LAZY_VERBS.values())):
        module = importlib.import_module(module_name)
        defined = {c.name for c in module.COMMANDS}
        listed = {verb for verb, m in LAZY_VERBS.items() if m == module_name}
        assert defined == listed, module_name


def test_help_lists_every_verb_and_each_resolves():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:", 1)[1].splitlines() if line.strip()}
    expected = {"up", "down", "status", "daemon", "exec", *LAZY_VERBS}
    assert listed == expected
    ctx = click.Context(cli)
    assert all(isinstance(cli.get_command(ctx, verb), click.Command) for verb in expected)
    assert dict(cli.commands.items()).keys() == expected  # walks over the group see every verb too
