"""`netsim agent` and `netsim controlplane`: one host's node agents, or a control-plane process, on their own.

Both run in the foreground (as a kubelet or kube-controller-manager would under systemd) by replacing this
process with the cluster's daemon loop in that role (netsim.hostagent), so the pid a supervisor holds is the
process that runs; `--detach` starts it in the background instead, logging under the state directory.
What to run is the cluster's to say (`netsim.Cluster.role_process`).
"""

from __future__ import annotations

import os
import sys

import click

from netsim.cli.common import cluster_option, handle_errors
from netsim.cli.front import cluster as open_cluster


def _run(cluster: str | None, role: str, host: str | None, detach: bool) -> None:
    with open_cluster(cluster) as c:
        argv, log = c.role_process(role, host)
        name = c.name
        if detach:
            pid = c.start_process(argv, log)
            click.echo(f"cluster {name}: {role}{f' of host {host}' if host else ''} started (pid {pid}, log {log})")
            return
    sys.stdout.flush()
    os.execv(argv[0], argv)


@click.command()
@cluster_option
@click.option("--host", required=True, help="The host (spec.hosts) whose nodes' agents to run.")
@click.option("--detach", is_flag=True, help="Run in the background (log under the state directory).")
@handle_errors
def agent(cluster: str | None, host: str, detach: bool) -> None:
    """Run the node agents (kubelets, kube-proxy, felix, flanneld, DNS responders, speaker) of the nodes
    placed on HOST, renewing their Leases, against the cluster's store."""
    _run(cluster, "agent", host, detach)


@click.command()
@cluster_option
@click.option("--detach", is_flag=True, help="Run in the background (log under the state directory).")
@handle_errors
def controlplane(cluster: str | None, detach: bool) -> None:
    """Run the control plane (controllers, scheduler, the API endpoint) while it holds the leader lease:
    a standby that takes over within one lease period when the leading process dies."""
    _run(cluster, "controlplane", None, detach)


COMMANDS = [agent, controlplane]
