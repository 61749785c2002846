"""`netsim kubeconfig`: the cluster's kubeconfig (context, cluster and user `netsim-<cluster>`), as
`kind get kubeconfig` prints it: certificate data inline, current-context set."""

from __future__ import annotations

import click
import yaml

from netsim import lifecycle, preflight
from netsim.apiserver import endpoint
from netsim.cli.common import cluster_option, handle_errors
from netsim.model.errors import UsageError


@click.command(name="kubeconfig")
@cluster_option
@handle_errors
def kubeconfig(cluster: str | None) -> None:
    """Print the cluster's kubeconfig (for KUBECONFIG=..., kubectl and client libraries)."""
    preflight.require_root("kubeconfig")
    st = lifecycle.resolve_cluster(cluster)
    ep = endpoint.load(st.name)
    if ep is None:
        raise UsageError(f"cluster {st.name} has no API endpoint (it was made without one); recreate it with "
                         f"`netsim down --name {st.name}` and `netsim up`")
    click.echo(yaml.safe_dump(ep.kubeconfig(), default_flow_style=False, sort_keys=False), nl=False)


COMMANDS = [kubeconfig]
