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

from netsim.cli.front import Front
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


# What `netsim apply -f slice.yaml --cluster C` imported on top of the above and no longer does: the
# builders of a cluster (lifecycle: namespaces, the API endpoint, etcd's process), the cluster model (only a
# Service's allocations need it), the Pod model (an EndpointSlice is no pod), the state directory's thread
# pool (concurrent.futures, logging), OpenSSL's hashes, the printers of `get`, the kernel interface (an apply
# never touches the kernel), shutil (the tool checks of `up`), subprocess (starting the daemon), random
# (typing only), difflib (an unknown field's "did you mean").
NOT_FOR_APPLY = ("netsim.lifecycle", "netsim.model.cluster", "netsim.model.pod", "netsim.model.status",
                 "netsim.fsclean", "netsim.fanout", "concurrent.futures", "logging", "hashlib", "netsim.cli.get",
                 "netsim.printers", "netsim.kernel", "netsim.apiserver.endpoint", "shutil", "subprocess", "random",
                 "difflib")

SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.0.0.7], conditions: {ready: true}}]
"""

APPLY_PROBE = """
import json, sys
import click
from netsim.cli.main import cli
cli.get_command(click.Context(cli), "apply")
from netsim.api import Cluster, NoDaemon
from netsim.model.loader import load_sourced
from netsim.state import ClusterState
from netsim.store import MemoryStore
path, spec = sys.argv[1], json.loads(sys.argv[2])
[(_, obj)] = load_sourced([path], stdin=None)        # what the verb parses
store = MemoryStore()                                 # and writes, through the front door
c = Cluster("imp", cluster_state=ClusterState(name="imp", phase="ready", spec=spec), store=store,
            daemon=NoDaemon(store))
lines = c.apply([obj], wait=False)
c.wait_converged(5, [obj.to_dict()])                 # and its wait (NoDaemon: one look at the marker)
print(json.dumps({"modules": sorted(sys.modules), "lines": lines}))
"""


def test_applying_a_slice_imports_neither_the_builders_nor_the_pod_and_cluster_models(tmp_path):
    from netsim.model.cluster import default_cluster
    path = tmp_path / "slice.yaml"
    path.write_text(SLICE)
    out = subprocess.run([sys.executable, "-c", APPLY_PROBE, str(path),
                          json.dumps(default_cluster("imp").to_dict())],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out)
    modules = set(result["modules"])
    assert result["lines"][-1] == "endpointslice/web-1 created"
    assert sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_FOR_APPLY)) == []
    assert heavy_in(modules) == []
    # 245 modules before these cuts (the write alone), 180 after (with its wait); a bound, not a timing
    assert len(modules) <= 200, len(modules)


def test_a_kernel_error_is_still_one_line_and_exit_1():
    """cli.common no longer imports KernelError to catch it (the kernel interface is not every command's
    import): a verb that raised one still fails with `kernel: ...`, exit 1, and other errors are unchanged."""
    from netsim.cli.common import handle_errors, is_kernel_error
    from netsim.kernel.api import KernelError

    @click.command()
    @handle_errors
    def boom() -> None:
        raise KernelError("RTNETLINK answers: File exists", 17)

    result = CliRunner().invoke(boom, [], obj=_NoRoot())
    assert result.exit_code == 1 and "netsim: kernel: RTNETLINK answers: File exists" in result.output
    assert is_kernel_error(KernelError("x")) and not is_kernel_error(ValueError("x"))


class _NoRoot(Front):
    """A Front that asks for no root (what handle_errors consults first)."""

    def require_root(self, what: str) -> None:
        return None
