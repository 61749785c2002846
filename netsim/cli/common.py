"""Shared CLI plumbing: error-to-exit-code mapping, output formats, the kernel handle."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click
import yaml

from netsim.kernel.api import KernelError
from netsim.model.errors import NetsimError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRACE_DISAGREE = 0, 1, 2, 3


def fail(message: str, code: int) -> None:
    click.echo(f"netsim: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """NetsimError subclasses carry their exit code; kernel errors are failures (1); no tracebacks."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NetsimError as exc:
            fail(str(exc), exc.exit_code)
        except KernelError as exc:
            fail(f"kernel: {exc}", EXIT_FAILED)
        except KeyboardInterrupt:
            fail("interrupted", 130)
    return wrapper


def emit(data: Any, output: str | None) -> bool:
    """Print machine output for -o json|yaml; False if the caller should print its human form."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
        return True
    if output == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False))
        return True
    return False


def kernel():
    """The real kernel (imported lazily: unit-level commands like `--help` need no pyroute2 start-up)."""
    from netsim.kernel.linux import LinuxKernel
    return LinuxKernel()


output_option = click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text",
                             help="Output format.")
cluster_option = click.option("--cluster", "cluster", default=None, envvar="NETSIM_CLUSTER",
                              help="Cluster name (default: the only running cluster).")
