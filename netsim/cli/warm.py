"""A cluster's warm CLI process: the `netsim` verbs with their modules already imported.

`python -m netsim.cli.warm <cluster>` (started by `netsim up`, removed by `down` with the cluster's other
processes: netsim.daemonproc knows its command line) imports the CLI, its verbs' modules and the model once,
then waits on `<state dir>/cli.sock`. For every command the thin client (netsim.cli.thin, the `netsim`
entry point) sends, it forks a child; the child takes the client's stdin, stdout and stderr, working
directory, environment and argv, and runs the click command exactly as `netsim` would run it cold, then
reports its exit status. What a command costs is then its own work: a one-endpoint `netsim apply` no longer
pays ~150-200 ms of interpreter and imports (benchmarks/README.md, "The warm CLI").

It runs one thread and forks a child per command (a command's crash, leak or `sys.exit` stays in the
child). It goes away by itself when its socket is no longer its own (the cluster was removed, or another
warm process took the name) and when a module of its netsim installation changes on disk (it would run old
code: the next command runs cold and `netsim up` of the cluster starts a new one). A command is refused, and
run cold by the client, when its interpreter, installation or an environment variable read at import time
differs from this process's.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

from netsim.cli import thin

MODULE = "netsim.cli.warm"

# Environment variables read when a module is imported, or by the interpreter at start-up: a command whose
# values differ from this process's runs cold.
IMPORT_TIME_ENV = ("NETSIM_STATE_ROOT", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
                   "PYTHONUSERBASE", "PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LC_ALL", "LC_CTYPE")

# What the warm verbs import before their first step (netsim.cli.main.LAZY_VERBS): each module once, here.
PRELOAD = ("netsim.cli.main", "netsim.cli.resources", "netsim.cli.get", "netsim.cli.mutate", "netsim.cli.wait",
           "netsim.cli.kubeconfig", "netsim.cli.top", "netsim.cli.draw", "netsim.cli.network",
           "netsim.cli.trace", "netsim.cli.policy", "netsim.model.loader",
           "yaml", "click", "rich.console", "hashlib", "difflib", "netsim.controlplane.admission")

IN_MODIFY, IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_MOVED_FROM = 0x002, 0x080, 0x100, 0x200, 0x040
LOOK_SECONDS = 1.0
SPARE_AFTER_SECONDS = 0.2  # idle this long after a command: fork the next one's child


def argv(cluster: str) -> list[str]:
    """The warm process's command line: the cluster's marker (netsim.daemonproc.role_of reads it)."""
    return [sys.executable, "-m", MODULE, cluster]


def socket_path(cluster: str) -> str:
    path = thin.socket_path(cluster)
    if path is None:
        raise ValueError(f"{cluster!r} is not a cluster name")
    return path


def running(cluster: str) -> bool:
    """A warm process answers on the cluster's socket."""
    path = thin.socket_path(cluster)
    if path is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def start(cluster: str) -> int | None:
    """Start the cluster's warm process unless one answers; its pid, or None. It takes commands once its
    modules are imported (~0.2 s); until then commands run cold. Its log is `<state dir>/cli.log`."""
    if running(cluster):
        return None
    state_dir = os.path.dirname(socket_path(cluster))
    if not os.path.isdir(state_dir):
        return None
    with open(os.path.join(state_dir, "cli.log"), "ab") as log:
        proc = subprocess.Popen(argv(cluster), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, close_fds=True, cwd="/")
    return proc.pid


def _log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} netsim.cli.warm[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


class Server:
    """The accept loop. Each command runs in a child forked ahead of it (the spare: forked while the loop is
    idle, it has rehearsed the apply path, so the pages a command touches are already its own) or, when
    commands come faster than spares, forked for it; a child killed by a signal is reported to its client."""

    def __init__(self, cluster: str):
        self.cluster = cluster
        self.path = socket_path(cluster)
        self.env = {k: os.environ.get(k) for k in IMPORT_TIME_ENV}
        self.children: dict[int, socket.socket] = {}
        self.spare: tuple[int, socket.socket] | None = None
        self.last_accept = 0.0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        temp = f"{self.path}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        self.listener.bind(temp)
        os.chmod(temp, 0o600)
        self.listener.listen(64)
        os.rename(temp, self.path)  # atomically: a client meets the old warm process or this one
        self.inode = os.stat(self.path).st_ino
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select through the wakeup fd
        self.code_watch = _watch_code()

    def still_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def serve(self) -> str:
        """Accept until the socket is not ours or the code changed; why it stopped."""
        watched = [self.listener, self.wake_r] + ([self.code_watch] if self.code_watch is not None else [])
        while True:
            if self.spare is None and time.monotonic() - self.last_accept >= SPARE_AFTER_SECONDS:
                self.make_spare()
            timeout = LOOK_SECONDS if self.spare is not None else SPARE_AFTER_SECONDS
            ready, _, _ = select.select(watched, [], [], timeout)
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
                self.reap()
            if self.code_watch is not None and self.code_watch in ready and _code_changed(self.code_watch):
                return "a module of its installation changed"
            if self.listener in ready:
                self.accept()
            if not ready and not self.still_ours():
                return "its socket is gone or another warm process took it"

    def _in_child(self) -> None:
        """What a forked child must not hold of the loop's (its signal wake-up descriptor first)."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        if self.code_watch is not None:
            os.close(self.code_watch)
        for other in self.children.values():
            other.close()
        if self.spare is not None:
            self.spare[1].close()

    def make_spare(self) -> None:
        """Fork the next command's child now, while nothing waits for it: it rehearses, then waits for a
        connection handed to it (SCM_RIGHTS), or leaves when the loop does."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self._in_child()
                ours.close()
                _rehearse()
                _, ancillary, _, _ = theirs.recvmsg(1, socket.CMSG_SPACE(4))
                fds = [int.from_bytes(payload[:4], sys.byteorder, signed=True)
                       for level, kind, payload in ancillary if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS]
                if fds:
                    theirs.close()
                    code = Command(socket.socket(fileno=fds[0]), self.env).run()
                else:
                    code = 0  # the loop went away
            except BaseException:  # noqa: BLE001 - whatever happens, the child never returns into the loop
                code = 1
            os._exit(code)
        theirs.close()
        self.spare = (pid, ours)

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.last_accept = time.monotonic()
        uid = _peer_uid(conn)
        if uid not in (0, os.geteuid()):
            conn.close()
            return
        if self.spare is not None:
            pid, hand = self.spare
            self.spare = None
            try:
                hand.sendmsg([b"c"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, conn.fileno().to_bytes(4, sys.byteorder))])
                self.children[pid] = conn
                return
            except OSError:  # the spare died: fork one for this command
                pass
            finally:
                hand.close()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self._in_child()
                code = Command(conn, self.env).run()
            except BaseException:  # noqa: BLE001 - whatever happens, the child never returns into the loop
                code = 1
            os._exit(code)
        self.children[pid] = conn

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare[0] == pid:
                self.spare[1].close()
                self.spare = None
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                with contextlib.suppress(OSError):
                    conn.sendall(thin.frame(b"S", str(os.WTERMSIG(status)).encode()))
            conn.close()

    def close(self) -> None:
        if self.still_ours():
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.listener.close()
        if self.spare is not None:
            self.spare[1].close()


def _rehearse() -> None:
    """Walk the common path of a command once without acting: parse a manifest and make `apply`'s click
    context. The pages that touches (reference counts, caches) are copied now rather than during a command:
    a one-slice `apply` took 10-12 ms in a fresh child, 6.5-7.3 ms after this (1,380 page faults -> 466)."""
    from netsim.cli.main import cli
    from netsim.model.loader import load_sourced

    load_sourced(["-"], stdin=io.StringIO(_REHEARSAL))
    args = ["-f", "x.yaml", "--cluster", "x", "--no-wait"]
    ctx = cli.make_context("netsim", ["apply", *args])
    command = cli.get_command(ctx, "apply")
    if command is not None:
        command.make_context("apply", list(args), parent=ctx)


_REHEARSAL = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-1, namespace: default, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
ports: [{port: 80, protocol: TCP}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
---
apiVersion: v1
kind: Service
metadata: {name: s, namespace: default}
spec: {ports: [{port: 80}], selector: {app: s}}
"""


class Command:
    """One command in a forked child: take the client's descriptors and environment, run the click command."""

    def __init__(self, conn: socket.socket, server_env: dict[str, str | None]):
        self.conn = conn
        self.server_env = server_env

    def refuse(self, why: str) -> int:
        with contextlib.suppress(OSError):
            self.conn.sendall(thin.frame(b"F", why.encode()))
        return 0

    def run(self) -> int:
        got = self.receive()
        if isinstance(got, str):
            return self.refuse(got)
        fds, (argv, cwd, env) = got
        started = time.monotonic()
        log_fd = os.dup(2)  # this process's log (cli.log), before the client's stderr takes descriptor 2
        try:
            os.chdir(cwd)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            return self.refuse(f"cannot enter {cwd}: {exc}")
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(env)
        _reopen_stdio()
        sys.argv = ["netsim", *argv]
        self.conn.sendall(thin.frame(b"P", str(os.getpid()).encode()))
        threading.Thread(target=self.listen_to_client, daemon=True, name="netsim-warm-client").start()
        code = _run_click(argv)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):  # logged before the client learns the status: a log read then has it
            verb = argv[0] if argv else ""
            os.write(log_fd, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} netsim.cli.warm[{os.getpid()}]: `netsim {verb}` "
                             f"exit {code} in {(time.monotonic() - started) * 1000:.1f} ms\n".encode())
        with contextlib.suppress(OSError):
            self.conn.sendall(thin.frame(b"X", str(code).encode()))
        return code

    def receive(self) -> str | tuple[list[int], tuple[list[str], str, dict[str, str]]]:
        """The client's descriptors and request, or why the command is not taken."""
        size = socket.CMSG_SPACE(3 * 4)
        data, ancillary, _, _ = self.conn.recvmsg(1 << 16, size)
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True)
                        for i in range(0, len(payload) - len(payload) % 4, 4)]
        if len(data) < 5 or data[:1] != b"R":
            return _close_all(fds, "no request")
        need = int.from_bytes(data[1:5], "big")
        body = data[5:]
        while len(body) < need:
            more = self.conn.recv(need - len(body))
            if not more:
                return _close_all(fds, "the request was cut short")
            body += more
        try:
            protocol, executable, package, argv, cwd, env, mask = marshal.loads(body)
        except (ValueError, EOFError, TypeError):  # also a tuple of another length: another protocol
            return _close_all(fds, "an unreadable request (another Python or netsim?)")
        if len(fds) != 3:
            return _close_all(fds, "stdin, stdout and stderr were not passed")
        if protocol != thin.PROTOCOL or executable != sys.executable or package != thin.PACKAGE:
            return _close_all(fds, "another interpreter or netsim installation")
        differs = [k for k in IMPORT_TIME_ENV if env.get(k) != self.server_env.get(k)]
        if differs:
            return _close_all(fds, f"the environment differs in {', '.join(differs)}")
        os.umask(int(mask) & 0o777)
        return fds, (list(argv), str(cwd), dict(env))

    def listen_to_client(self) -> None:
        """The client's signals, passed on to this process; the client gone: end, as it would have."""
        signals = {b"I": signal.SIGINT, b"T": signal.SIGTERM, b"H": signal.SIGHUP}
        while True:
            try:
                got = self.conn.recv(1)
            except OSError:
                got = b""
            if not got:
                os._exit(128 + signal.SIGKILL)
            if got in signals:
                os.kill(os.getpid(), signals[got])


def _close_all(fds: list[int], why: str) -> str:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    return why


def _reopen_stdio() -> None:
    """Python's own stdio on the client's descriptors: stdout line-buffered on a terminal, else buffered;
    stderr line-buffered; the encodings this interpreter chose at start-up (the locale variables match)."""
    encoding = sys.stdout.encoding if sys.stdout is not None else "utf-8"
    # The process's own streams, for its whole (short) life: no context manager.
    sys.stdin = open(0, encoding=encoding, errors="strict", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=encoding, errors="strict", closefd=False,  # noqa: SIM115
                      buffering=1 if os.isatty(1) else -1)
    sys.stderr = open(2, "w", encoding=encoding, errors="backslashreplace", closefd=False, buffering=1)  # noqa: SIM115
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr


def _run_click(argv: list[str]) -> int:
    """`netsim ARGV` as the console script runs it: its exit status as the process would have it."""
    from netsim.cli.main import cli
    try:
        cli.main(args=argv, prog_name="netsim")
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        sys.stderr.write("netsim: interrupted\n")
        return 130
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback, status 1
        traceback.print_exc()
        return 1
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[4:8], sys.byteorder)


def _watch_code() -> int | None:
    """An inotify descriptor on every directory of this installation's netsim package and the CNI plugins'
    (the modules this process runs), or None."""
    return watch_dirs(sorted({os.path.dirname(m.__file__) for name, m in list(sys.modules.items())
                              if name.split(".")[0] in ("netsim", "cni_plugins") and getattr(m, "__file__", None)}))


def watch_dirs(dirs: list[str]) -> int | None:
    """One inotify descriptor watching `dirs` for files written, added, removed or renamed; None if there is
    no directory or no inotify instance left."""
    from netsim import dirwatch
    mask = IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM
    if not dirs:
        return None
    fd = dirwatch.inotify_watch(dirs[0], mask)
    if fd is None or dirwatch._libc is None:
        return fd
    for d in dirs[1:]:
        dirwatch._libc.inotify_add_watch(fd, os.fsencode(d), mask)
    return fd


def _code_changed(fd: int) -> bool:
    """A `.py` file was written, added, removed or renamed in a watched directory (bytecode caches are not)."""
    changed = False
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return changed
        if not data:
            return changed
        i = 0
        while i + 16 <= len(data):
            name_len = int.from_bytes(data[i + 12:i + 16], sys.byteorder)
            name = data[i + 16:i + 16 + name_len].rstrip(b"\0")
            changed = changed or name.endswith(b".py")
            i += 16 + name_len


def preload() -> None:
    """Import what the warm verbs use, including what their functions import when first called (every
    module of the object model): a child would otherwise import it again for every command."""
    import pkgutil

    import netsim.model
    for name in PRELOAD:
        importlib.import_module(name)
    for info in pkgutil.iter_modules(netsim.model.__path__, "netsim.model."):
        importlib.import_module(info.name)
    cli = sys.modules["netsim.cli.main"].cli
    for verb in sorted(thin.WARM_VERBS):
        cli.commands[verb]  # noqa: B018 - imports the verb's module, as a command of it would


def main(args: list[str] | None = None) -> int:
    args = sys.argv[1:] if args is None else args
    if len(args) != 1 or thin.socket_path(args[0]) is None:
        sys.stderr.write("usage: python -m netsim.cli.warm CLUSTER\n")
        return 2
    cluster = args[0]
    if not os.path.isdir(os.path.dirname(socket_path(cluster))):
        _log(f"cluster {cluster}: no state directory; not starting")
        return 1
    preload()
    threads = threading.active_count()
    if threads != 1:  # forking a process with other threads could copy a held lock into the child
        _log(f"cluster {cluster}: {threads} threads after the imports; not serving")
        return 1
    gc.collect()
    gc.freeze()  # the children's collections do not touch (and copy) the imported modules' objects
    server = Server(cluster)
    _log(f"cluster {cluster}: serving on {server.path}")
    try:
        why = server.serve()
    finally:
        server.close()
    _log(f"cluster {cluster}: stopped: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
