"""Every verb of the CLI, fed malformed options and selectors: one line on stderr, the documented exit code,
never a traceback.

The verbs are enumerated from the click group, so a new verb is walked without touching this file. Each
verb gets a harmless base command line (it names nothing that exists, so it fails fast), and then every
option and argument in turn gets values that are wrong in type, range, shape or reference. All of it runs
in process (click's CliRunner) against one shared 1-node cluster; verbs that would build or remove
clusters (`up`, `down`, `run`) only ever get input that must be refused before anything is built. Curated
cases then pin exit 2 where the input is plainly malformed (the issue's list: `verify --to svc/...`,
`verify --from a,b`, `--count -1`, unknown kinds, bad formats, a missing cluster, ...).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from netsim import lifecycle
from netsim.api import Cluster
from netsim.cli.main import cli
from tests.conftest import unique_name

pytestmark = pytest.mark.root

BAD_NUMBERS = ["-1", "abc", "1e999", "nan", ""]
BAD_TEXT = ["svc/...", "a,b", "", "/", "//x", "x/y/z/w", "*", "ns/", "node/", "host/", "svc/", "svc/a",
            "1.2.3.4:0", "1.2.3.4:99999", "300.1.1.1", "-", "NoSuch/Pod", "a b", "..", "%s%n", "x" * 300]
BAD_CHOICES = ["bogus"]
# Files: inputs that exist but are no manifests, and outputs only where nothing can be written.
IN_FILES = ["", " ", "/nonexistent/x.yaml", "/etc/hostname", "/dev/null", "-"]
OUT_FILES = ["", "/nonexistent/dir/out.svg", "/nonexistent/dir/out.gif", "/nonexistent/dir/out.pcap"]
FILE_OPTIONS = {"-f", "--filename", "--file", "--diff"}
OUT_OPTIONS = {("draw", "-o"), ("verify", "--png"), ("load", "--png"), ("trace", "--pcap"), ("run", "--report")}
# Options never fuzzed: they select whole-machine actions (down --all) or are flags without values.
NEVER = {("down", "--all")}
UP_NAME = unique_name("walkup")
BASE = {  # harmless command lines: each names nothing that exists
    "agent": ["--host", "nosuch-host"],
    "apply": ["-f", "/nonexistent/x.yaml"],
    "controlplane": ["--cluster", "nosuch"],
    "daemon restart": ["--cluster", "nosuch"],
    "delete": ["pod", "nosuch-pod"],
    "describe": ["pod", "nosuch-pod"],
    "down": ["--name", "NOT_A_NAME"],
    "draw": ["--path", "default/nosuch", "default/nosuch2"],
    "events": ["--for", "pod/nosuch"],
    "exec": ["default/nosuch", "--", "true"],
    "edit": ["pod/nosuch-pod"],
    "explain": ["default/nosuch", "default/nosuch2:80"],
    "get": ["nosuchkind"],
    "kill pod": ["nosuch-pod"],
    "kubeconfig": [],  # the walk's own cluster (NETSIM_CLUSTER)
    "label": ["pod", "nosuch-pod", "a=b"],
    "annotate": ["pod", "nosuch-pod", "a=b"],
    "set image": ["deploy/nosuch", "c=img"],
    "wait": ["pod/nosuch-pod", "--for", "condition=Ready", "--timeout", "1s"],
    "load": ["--from", "default/nosuch", "--to", "default/nosuch2", "--rate", "10", "--duration", "0.2"],
    "logs": ["nosuch-pod"],
    "top pods": ["nosuch-pod"],
    "top nodes": [],
    "node fail": ["nosuch-node"],
    "node restore": ["nosuch-node"],
    "probe": ["--from", "default/nosuch", "--to", "default/nosuch2"],
    "proxy rules": ["--node", "nosuch-node"],
    "rollout history": ["deploy/nosuch"],
    "rollout status": ["deploy/nosuch"],
    "rollout undo": ["deploy/nosuch"],
    "run": ["/nonexistent/s.yaml"],
    "scale": ["deploy/nosuch", "--replicas", "1"],
    "status": [],
    "trace": ["default/nosuch", "default/nosuch2:80"],
    "up": ["-f", "/nonexistent/c.yaml", "--name", UP_NAME],  # removed after the walk, should it ever be built
    "verify": ["--from", "default/nosuch"],
}


def leaf_commands() -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}

    def walk(group: click.Group, path: list[str]) -> None:
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                walk(cmd, [*path, name])
            else:
                out[" ".join([*path, name])] = cmd
    walk(cli, [])
    return out


def variants(path: str, cmd: click.Command) -> Iterator[list[str]]:
    """The base line with one option or argument made wrong at a time."""
    base = BASE[path]
    yield base
    for p in cmd.params:
        if isinstance(p, click.Option):
            if p.is_flag or (path, p.opts[0]) in NEVER or p.name == "cluster":
                continue
            flag = p.opts[0]
            if (path, flag) in OUT_OPTIONS:
                values = OUT_FILES
            elif flag in FILE_OPTIONS:
                values = IN_FILES
            elif isinstance(p.type, click.Choice):
                values = BAD_CHOICES
            elif isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType)):
                values = BAD_NUMBERS
            else:
                values = BAD_TEXT
            rest = _without(base, flag, p.nargs)
            for v in values:
                yield [*rest, flag, *([v] * p.nargs)]
        elif path not in ("up", "down", "run", "exec"):  # arguments: replace the base's positional values
            positions = [i for i, a in enumerate(base) if not a.startswith("-") and (i == 0 or not
                         base[i - 1].startswith("-"))]
            for i in positions:
                for v in BAD_TEXT:
                    yield [*base[:i], v, *base[i + 1:]]


def _without(argv: list[str], flag: str, nargs: int) -> list[str]:
    if flag not in argv:
        return list(argv)
    i = argv.index(flag)
    return argv[:i] + argv[i + 1 + nargs:]


def check(argv: list[str], codes: tuple[int, ...] = (0, 1, 2, 3)) -> tuple[int, str]:
    result = CliRunner().invoke(cli, argv, prog_name="netsim", input="")
    stderr = result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        argv, repr(result.exception), stderr)
    assert "Traceback" not in stderr and "Traceback" not in result.stdout, (argv, stderr)
    assert "internal error" not in stderr, (argv, stderr)  # what would have been a traceback
    assert result.exit_code in codes, (argv, result.exit_code, stderr, result.stdout[-300:])
    if result.exit_code != 0:  # one line; several bad documents: one line each, every one saying where
        lines = stderr.strip().splitlines()
        assert lines and all(line.startswith("netsim") for line in lines), (argv, stderr)
    return result.exit_code, stderr


@pytest.fixture(scope="module")
def cluster(kernel) -> Iterator[str]:
    name = unique_name("walk")
    saved = os.environ.get("NETSIM_CLUSTER")
    try:
        Cluster.up({"spec": {"nodes": 1}}, name=name).close()
        os.environ["NETSIM_CLUSTER"] = name
        yield name
    finally:
        os.environ.pop("NETSIM_CLUSTER", None) if saved is None else os.environ.__setitem__("NETSIM_CLUSTER", saved)
        lifecycle.down(kernel, name)
        lifecycle.down(kernel, UP_NAME)


def test_every_verb_with_malformed_input_is_one_line_never_a_traceback(cluster):
    commands = leaf_commands()
    assert set(commands) == set(BASE), "a new verb: give it a harmless base line in BASE"
    walked, failures = 0, []
    for path, cmd in sorted(commands.items()):
        for argv in variants(path, cmd):
            try:
                check([*path.split(), *argv])
            except AssertionError as exc:
                failures.append(str(exc)[:300])
            walked += 1
    assert not lifecycle.state.load(UP_NAME), "a malformed `up` built a cluster"
    assert not failures, "\n".join(failures)
    assert walked > 400


CURATED = [
    ["verify", "--to", "svc/..."],
    ["verify", "--from", "a,b"],
    ["verify", "--from", "default/*", "--ports", "x"],
    ["verify", "--from", "default/*", "--ports", "0"],
    ["verify", "--from", "default/*", "--protocols", "FOO"],
    ["verify", "--timeout", "-1"],
    ["probe", "--count", "-1"],
    ["probe", "--count", "0"],
    ["probe", "--timeout", "-1"],
    ["probe", "--from", "a,b"],
    ["probe", "--to", "svc/..."],
    ["probe", "--ports", "70000"],
    ["probe", "--protocols", "ICMPX"],
    ["get", "foos"],
    ["get", "pods", "-o", "xml"],
    ["describe", "foos", "x"],
    ["delete", "foos", "x"],
    ["delete", "pod", "x", "--grace-period", "-5"],
    ["scale", "deploy/x", "--replicas", "-1"],
    ["scale", "nonsense", "--replicas", "1"],
    ["rollout", "undo", "deploy/x", "--to-revision", "-1"],
    ["rollout", "status", "deploy/x", "--timeout", "-1"],
    ["rollout", "status", "x/y/z"],
    ["trace", "default/a", "default/b:80", "--port", "0"],
    ["trace", "a,b", "default/b:80"],
    ["explain", "default/a", "svc/..."],
    ["events", "--for", "a,b"],
    ["draw", "-o", "x.gif"],
    ["proxy", "rules", "--node", "node-1", "--service", "a,b"],
    ["apply", "-f", "/nonexistent/x.yaml"],
    ["apply", "--timeout", "-1", "-f", "/nonexistent/x.yaml"],
    ["get", "pods", "--cluster", "nosuch"],
    ["status", "--cluster", "../x"],
    ["down", "--name", ".."],
    ["down", "--all", "--name", "x"],
    ["up", "--name", "Bad_Name"],
    ["up", "-f", "", "--name", UP_NAME],
    ["up", "--timeout", "-1", "--name", "nosuchq"],
    ["run", "/nonexistent/s.yaml"],
    ["exec", "default/nosuch"],
    ["kill", "pod", "x", "--timeout", "-1"],
    ["node", "fail", "nosuch-node"],
]


# Ids name the arguments, never the random cluster name: every xdist worker must collect the same ids.
@pytest.mark.parametrize("argv", CURATED, ids=[" ".join(a).replace(UP_NAME, "NAME")[:40] for a in CURATED])
def test_malformed_input_exits_2_with_one_line(cluster, argv):
    code, stderr = check(argv, codes=(2,))
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_the_loser_of_two_concurrent_ups_is_told_so(kernel):
    """Two `up` of one name at once: one builds it, the other exits 2 saying another `netsim up` has it (or
    that it is running, when the winner was already done), and the winner's cluster is intact."""
    name = unique_name("race")
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(2)

    def up() -> None:
        from tests.conftest import run_netsim
        barrier.wait()
        proc = run_netsim("up", "--name", name, "--no-daemon", check=False)
        results.append((proc.returncode, proc.stderr))
    try:
        threads = [threading.Thread(target=up) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        loser = next(err for code, err in results if code == 2)
        assert len(loser.strip().splitlines()) == 1 and "Traceback" not in loser, loser
        assert "another `netsim up`" in loser or "already running" in loser, loser
        st = lifecycle.state.load(name)
        assert st is not None and st.phase == "ready" and len(st.nodes) == 3
        assert all(lifecycle.status(st)["nodes"][i]["present"] for i in range(3))
    finally:
        lifecycle.down(kernel, name)


def test_admission_errors_name_the_file_not_inline(cluster, tmp_path):
    """An object refused at admission (its nodePort taken) is reported against its file and document, by
    `apply -f` and by `verify -f` (which applies through the Python API)."""
    svc = ("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
           "spec: {{type: NodePort, selector: {{app: a}}, ports: [{{port: 80, nodePort: 30999}}]}}\n")
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(svc.format(name="held"))
    second.write_text(svc.format(name="other"))
    assert check(["apply", "-f", str(first)], codes=(0,))[0] == 0
    for verb in (["apply", "-f", str(second)], ["verify", "-f", str(second)]):
        _, stderr = check(verb, codes=(2,))
        assert str(second) in stderr and "<inline>" not in stderr and "already allocated" in stderr, stderr
