"""The `netsim` entry point's warm path, pure parts: which process a command goes to, the wire frames, the
verbs it may hand over, and the warm process's marker (tests/integration/test_warm_cli.py runs it for real)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile

from netsim import daemonproc, naming
from netsim.cli import thin, warm
from netsim.cli.main import LAZY_VERBS, cli


def test_the_state_root_is_the_one_naming_uses():
    assert thin.STATE_ROOT == naming.STATE_ROOT
    assert thin.socket_path("abc") == os.path.join(naming.state_dir("abc"), "cli.sock")


def test_the_cluster_comes_from_the_flag_then_the_environment_then_the_only_state_dir():
    assert thin.cluster_of(["get", "pods", "--cluster", "one"], {"NETSIM_CLUSTER": "two"}) == "one"
    assert thin.cluster_of(["get", "pods", "--cluster=one"], {}) == "one"
    assert thin.cluster_of(["get", "pods"], {"NETSIM_CLUSTER": "two"}) == "two"
    # After `--` the words are another program's.
    assert thin.cluster_of(["get", "--", "--cluster", "x"], {"NETSIM_CLUSTER": "two"}) == "two"


def test_a_name_that_is_not_one_path_component_has_no_socket():
    for bad in ("", ".", "..", "a/b", "../etc", "a\0b"):
        assert thin.socket_path(bad) is None


def test_warm_verbs_are_verbs_and_leave_out_those_that_own_the_terminal_or_make_clusters():
    known = set(LAZY_VERBS) | set(cli.commands)
    assert known >= thin.WARM_VERBS
    for verb in ("up", "down", "exec", "edit", "agent", "controlplane", "daemon", "run", "load", "proxy"):
        assert verb not in thin.WARM_VERBS


def test_frames_round_trip_over_a_socket():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(thin.frame(b"P", b"1234") + thin.frame(b"X", b"") + thin.frame(b"F", b"x" * 70000))
        assert thin.read_frame(b) == (b"P", b"1234")
        assert thin.read_frame(b) == (b"X", b"")
        got = None

        def drain():
            nonlocal got
            got = thin.read_frame(b)

        import threading
        t = threading.Thread(target=drain)
        t.start()
        t.join(5)
        assert got == (b"F", b"x" * 70000)
        a.close()
        assert thin.read_frame(b) is None


def test_no_warm_process_means_the_command_runs_here():
    with tempfile.TemporaryDirectory() as root:
        os.mkdir(os.path.join(root, "solo"))
        code = ("import sys; from netsim.cli import thin; thin.STATE_ROOT = sys.argv[1]; "
                "print(thin.run_warm(['get', 'pods']), thin.run_warm(['up']))")
        out = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["None", "None"]


def test_the_warm_process_and_its_commands_are_processes_of_their_cluster():
    line = warm.argv("abc")
    assert daemonproc.role_of(line, "abc") == ("cli", None)
    assert daemonproc.role_of(line, "ab") is None
    assert daemonproc.role_of([*line, "extra"], "abc") is None
    assert daemonproc.role_of(daemonproc.argv("abc"), "abc") == ("daemon", None)


def test_a_module_written_in_a_watched_directory_is_a_code_change_and_bytecode_is_not():
    with tempfile.TemporaryDirectory() as d:
        fd = warm.watch_dirs([d])
        assert fd is not None
        try:
            os.makedirs(os.path.join(d, "__pycache__"))
            with open(os.path.join(d, "x.pyc"), "w") as f:
                f.write("")
            assert not warm._code_changed(fd)
            with open(os.path.join(d, "x.py"), "w") as f:
                f.write("")
            assert warm._code_changed(fd)
        finally:
            os.close(fd)


def test_the_entry_point_imports_only_built_in_modules_before_it_hands_a_command_over():
    code = ("import sys; before = set(sys.modules); import netsim.cli.thin; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "netsim.cli.thin" in loaded
    assert loaded <= {"__future__", "_signal", "_socket", "marshal", "netsim", "netsim.cli", "netsim.cli.thin"}
