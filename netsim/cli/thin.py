"""The `netsim` command's entry point: hands the command to the cluster's warm CLI process when it can.

A `netsim` verb spends ~150-200 ms before its first useful step: the interpreter, click, PyYAML and the
model (benchmarks/README.md, "10,000 Services on a quiet machine"). `netsim up` therefore leaves one warm
CLI process per cluster (netsim.cli.warm: `python -m netsim.cli.warm <cluster>`, modules imported, waiting
on `<state dir>/cli.sock`). This module, which imports only built-in modules, connects to it and passes the
command's argv, working directory, environment, umask and its own stdin, stdout and stderr (SCM_RIGHTS); the warm
process forks a child that runs the very same click command on those descriptors, so output, terminal
detection, `-f -` and exit codes are those of the command run here. Ctrl-C and SIGTERM/SIGHUP are passed on
to the child; a child killed by a signal ends this process by the same signal.

The command runs here, cold, whenever the warm path does not apply: a verb that starts or removes clusters,
enters namespaces or hands the terminal to another program (WARM_VERBS lists the others); no warm process
(a cluster built through the Python API, or one whose warm process left); a warm process of another
interpreter, another netsim installation or another state root; any failure before the warm process took
the command. Once it has taken the command, the command is never run twice.

The wire format (one connection per command; every frame a tag byte and a 4-byte length):
client -> server, with the three descriptors:
`marshal.dumps((PROTOCOL, executable, package, argv, cwd, env, umask))`;
server -> client: `P` pid (the child runs the command), or `F` reason (not taken: run it cold); then `X`
exit status, or `S` signal number (the child died by it). Client -> child after `P`: `I`, `T` or `H`
(SIGINT, SIGTERM, SIGHUP received here).
"""

from __future__ import annotations

import _signal
import _socket
import marshal
import os
import sys

PROTOCOL = 1
SOCKET_NAME = "cli.sock"
NO_WARM_ENV = "NETSIM_NO_WARM"  # set (to anything but ""): every command runs here, cold

# The same default as netsim.naming.STATE_ROOT (not imported: that module costs more than this whole path).
# tests/unit/cli/test_thin.py checks they agree.
STATE_ROOT = os.environ.get("NETSIM_STATE_ROOT", "/run/netsim")

# Verbs the warm process may run: each acts on an existing cluster through netsim.Cluster, prints and exits.
# Not: up/down (they make and remove clusters and this process with them), exec and edit (they hand the
# terminal to another program, which needs this process's terminal session), agent/controlplane/daemon
# (they start a cluster's long-lived processes), run (scenarios build clusters), load and proxy (long-lived
# traffic and port servers, which belong to the caller's session).
WARM_VERBS = frozenset({
    "annotate", "apply", "delete", "describe", "draw", "events", "explain", "get", "kill", "kubeconfig",
    "label", "logs", "node", "probe", "rollout", "scale", "set", "status", "top", "trace", "verify", "wait",
})

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cluster_of(argv: list[str], env: dict[str, str] | os._Environ[str]) -> str | None:
    """The cluster a command names (`--cluster NAME`, `--cluster=NAME`, NETSIM_CLUSTER), else the only cluster
    with a state directory, else None. The command resolves its cluster again itself; this only picks the
    warm process."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--cluster" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--cluster="):
            return arg[len("--cluster="):]
    if env.get("NETSIM_CLUSTER"):
        return env["NETSIM_CLUSTER"]
    try:
        names = [d for d in os.listdir(STATE_ROOT) if os.path.isdir(os.path.join(STATE_ROOT, d))]
    except OSError:
        return None
    return names[0] if len(names) == 1 else None


def socket_path(cluster: str) -> str | None:
    """`<state root>/<cluster>/cli.sock`, or None for a name that is not one plain path component."""
    if not cluster or "/" in cluster or cluster in (".", "..") or "\0" in cluster:
        return None
    return os.path.join(STATE_ROOT, cluster, SOCKET_NAME)


def frame(tag: bytes, body: bytes) -> bytes:
    return tag + len(body).to_bytes(4, "big") + body


def read_frame(sock: _socket.socket) -> tuple[bytes, bytes] | None:
    """One frame, or None at the end of the stream."""
    head = _read_exactly(sock, 5)
    if head is None:
        return None
    body = _read_exactly(sock, int.from_bytes(head[1:5], "big"))
    return None if body is None else (head[:1], body)


def _read_exactly(sock: _socket.socket, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        try:
            chunk = sock.recv(n - got)
        except InterruptedError:
            continue
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def run_warm(argv: list[str]) -> int | None:
    """Run `netsim ARGV` in the cluster's warm process: its exit status, or None when it did not take the
    command (then the caller runs it here)."""
    if not argv or argv[0] not in WARM_VERBS or os.environ.get(NO_WARM_ENV):
        return None
    cluster = cluster_of(argv, os.environ)
    path = socket_path(cluster) if cluster else None
    if path is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
            mask = os.umask(0o077)
            os.umask(mask)
            request = marshal.dumps((PROTOCOL, sys.executable, PACKAGE, list(argv), os.getcwd(), dict(os.environ),
                                     mask))
            fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
            data = frame(b"R", request)
            sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            if sent < len(data):
                sock.sendall(data[sent:])
            first = read_frame(sock)
        except OSError:  # no warm process, a stale socket, a closed descriptor 0-2, ...
            return None
        if first is None or first[0] != b"P":
            return None  # `F`: not taken, or the warm process went away before taking it
        return _follow(sock, int(first[1]))
    finally:
        sock.close()


def _follow(sock: _socket.socket, pid: int) -> int:
    """Wait for the child's exit status, passing on the signals this process gets."""
    tags = {_signal.SIGINT: b"I", _signal.SIGTERM: b"T", _signal.SIGHUP: b"H"}

    def forward(signum: int, _frame: object) -> None:
        try:
            sock.send(tags[signum])
        except OSError:
            pass

    for signum in tags:
        _signal.signal(signum, forward)
    while True:
        try:
            got = read_frame(sock)
        except OSError:
            got = None
        if got is None:
            os.write(2, f"netsim: the command's process (pid {pid}) ended without an exit status\n".encode())
            return 1
        tag, body = got
        if tag == b"X":
            return int(body)
        if tag == b"S":
            signum = int(body)
            _signal.signal(signum, _signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return 128 + signum


def main() -> None:
    status = run_warm(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from netsim.cli.main import main as cold_main
    cold_main()


if __name__ == "__main__":
    main()
