"""`netsim kubeconfig`: the cluster's kubeconfig (context, cluster and user `netsim-<cluster>`), as
`kind get kubeconfig` prints it: certificate data inline, current-context set."""

from __future__ import annotations

import click
import yaml

from netsim.cli.common import cluster_option, handle_errors
from netsim.cli.front import cluster as open_cluster


@click.command(name="kubeconfig")
@cluster_option
@handle_errors
def kubeconfig(cluster: str | None) -> None:
    """Print the cluster's kubeconfig (for KUBECONFIG=..., kubectl and client libraries)."""
    with open_cluster(cluster) as c:
        config = c.kubeconfig()
    click.echo(yaml.safe_dump(config, default_flow_style=False, sort_keys=False), nl=False)


COMMANDS = [kubeconfig]
