"""Shared CLI plumbing: error-to-exit-code mapping, output formats."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import click
import yaml

from netsim.cli.front import front
from netsim.model.errors import NetsimError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRACE_DISAGREE = 0, 1, 2, 3


def fail(message: str, code: int) -> None:
    click.echo(f"netsim: {message}", err=True)
    sys.exit(code)


def permission_message(exc: PermissionError) -> str:
    """A non-root user meets the cluster state (0700, root's) or a kernel operation: say so in one line."""
    what = f" ({exc.filename})" if exc.filename else ""
    return (f"permission denied{what}: netsim creates namespaces and keeps every cluster's state readable by "
            "root only; run it as root (sudo netsim ...)")


def is_kernel_error(exc: BaseException) -> bool:
    """A netsim.kernel.api.KernelError. Only a command that imported the kernel interface can have raised one,
    so its class is looked up where it is loaded, not imported by every command (`netsim apply` never
    touches the kernel)."""
    kernel_api = sys.modules.get("netsim.kernel.api")
    return kernel_api is not None and isinstance(exc, kernel_api.KernelError)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """NetsimError subclasses carry their exit code; kernel errors are failures (1); a non-root user's
    permission error is a usage error (2); anything else is one line too (NETSIM_DEBUG=1 shows the
    traceback): a command never ends in a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            # Every verb makes or enters namespaces or reads the root-only state: say so before anything else.
            ctx = click.get_current_context(silent=True)
            front().require_root(" ".join(ctx.command_path.split()[1:]) if ctx else "")
            return fn(*args, **kwargs)
        except NetsimError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except PermissionError as exc:
            if os.environ.get("NETSIM_DEBUG"):
                raise
            if os.geteuid() != 0:
                fail(permission_message(exc), EXIT_USAGE)
            fail(str(exc), EXIT_FAILED)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if is_kernel_error(exc):
                fail(f"kernel: {exc}", EXIT_FAILED)
            if os.environ.get("NETSIM_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(f"internal error: {type(exc).__name__}: {first} (NETSIM_DEBUG=1 shows the traceback)", EXIT_FAILED)
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


class Seconds(click.ParamType):
    """A duration in seconds: a finite number above zero (`--timeout -1`, `nan` or `inf` are usage errors)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"must be a number of seconds above 0, got {value!r}", param, ctx)
        return number


SECONDS = Seconds()

output_option = click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text",
                             help="Output format.")
cluster_option = click.option("--cluster", "cluster", default=None, envvar="NETSIM_CLUSTER",
                              help="Cluster name (default: the only running cluster).")
