"""The errors people hit first: not root, missing tools, bad spec files. Clear sentence, exit code 2."""

from __future__ import annotations

from click.testing import CliRunner

from netsim import preflight
from netsim.cli import main as cli_main


def test_not_root_is_one_clear_sentence(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli_main.cli, ["up"])
    assert result.exit_code == 2
    assert "must run as root" in result.output


def test_missing_tool_says_how_to_install(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr("shutil.which", lambda t: None if t == "ipset" else "/usr/sbin/" + t)
    result = CliRunner().invoke(cli_main.cli, ["up"])
    assert result.exit_code == 2
    assert "ipset" in result.output and "apt-get install -y ipset" in result.output


def test_bad_spec_file_names_file_and_field(monkeypatch, tmp_path):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    f = tmp_path / "c.yaml"
    f.write_text("apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {name: x}\n"
                 "spec: {network: {plugin: calico, backend: host-gw}}\n")
    result = CliRunner().invoke(cli_main.cli, ["up", "-f", str(f)])
    assert result.exit_code == 2
    assert str(f) in result.output and "spec.network.backend" in result.output


def test_exec_needs_a_command(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    result = CliRunner().invoke(cli_main.cli, ["exec", "host/x", "--"])
    assert result.exit_code == 2 and "no command given" in result.output


def test_events_for_takes_kubectl_shaped_names():
    import pytest

    from netsim.cli.resources import event_objects
    from netsim.model.errors import UsageError

    assert event_objects("pod/default/web-1") == {"Pod default/web-1"}
    assert event_objects("po/web-1") == {"Pod default/web-1"}
    assert event_objects("svc/kube-system/kube-dns") == {"Service kube-system/kube-dns"}
    assert event_objects("node/node-1") == {"node/node-1", "Node node-1"}
    assert event_objects("Pod default/web-1") == {"Pod default/web-1"}
    for bad in ("a,b", "pod/", "foo/x", "pod/a/b/c", "node/a/b", ""):
        with pytest.raises(UsageError):
            event_objects(bad)


def test_usage_errors_are_one_line(monkeypatch):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    for argv in (["probe", "--count", "0"], ["apply"], ["get"], ["probe", "--timeout", "nan"], ["rollout"]):
        result = CliRunner().invoke(cli_main.cli, argv, prog_name="netsim")
        assert result.exit_code == 2, (argv, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("netsim"), result.stderr
