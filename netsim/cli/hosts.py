"""`netsim agent` and `netsim controlplane`: one host's node agents, or a control-plane process, on their own.

Both run in the foreground (as a kubelet or kube-controller-manager would under systemd) by replacing this
process with the cluster's daemon loop in that role (netsim.hostagent), so the pid a supervisor holds is the
process that runs; `--detach` starts it in the background instead, logging under the state directory.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from netsim import daemonproc, hostagent, preflight, state
from netsim.cli.common import cluster_option, handle_errors
from netsim.model.cluster import parse_cluster
from netsim.model.errors import NetsimError, Source


class AlreadyRunning(NetsimError):
    exit_code = 1


def _spec(cluster: str | None):  # noqa: ANN202 - (ClusterState, ClusterSpec)
    from netsim import lifecycle
    st = lifecycle.resolve_cluster(cluster)
    return st, parse_cluster(st.spec, Source(state.state_file(st.name)))


def _run(cluster: str, role: str, host: str | None, detach: bool, log: str) -> None:
    argv = daemonproc.argv(cluster, role, host)
    if not detach:
        sys.stdout.flush()
        os.execv(argv[0], argv)
    with state.open_private(log, "ab") as f:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f, start_new_session=True,
                                close_fds=True)
    click.echo(f"cluster {cluster}: {role}{f' of host {host}' if host else ''} started (pid {proc.pid}, log {log})")


@click.command()
@cluster_option
@click.option("--host", required=True, help="The host (spec.hosts) whose nodes' agents to run.")
@click.option("--detach", is_flag=True, help="Run in the background (log under the state directory).")
@handle_errors
def agent(cluster: str | None, host: str, detach: bool) -> None:
    """Run the node agents (kubelets, kube-proxy, felix, flanneld, DNS responders, speaker) of the nodes
    placed on HOST, renewing their Leases, against the cluster's store."""
    preflight.require_root("agent")
    st, spec = _spec(cluster)
    hostagent.agent_nodes(spec, host)  # refuses a host the spec does not name (exit 2)
    running = hostagent.running_agents(st.name).get(host)
    if running:
        raise AlreadyRunning(f"cluster {st.name}: the agent of host {host} already runs (pid {running})")
    _run(st.name, "agent", host, detach, hostagent.log_path(st.name, host))


@click.command()
@cluster_option
@click.option("--detach", is_flag=True, help="Run in the background (log under the state directory).")
@handle_errors
def controlplane(cluster: str | None, detach: bool) -> None:
    """Run the control plane (controllers, scheduler, the API endpoint) while it holds the leader lease:
    a standby that takes over within one lease period when the leading process dies."""
    preflight.require_root("controlplane")
    st, _ = _spec(cluster)
    _run(st.name, "controlplane", None, detach, os.path.join(os.path.dirname(state.state_file(st.name)),
                                                              "controlplane.log"))


COMMANDS = [agent, controlplane]
