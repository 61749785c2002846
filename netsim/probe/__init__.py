"""Probing: many client connections at once from chosen namespaces (see engine.py)."""

from netsim.probe.engine import Probe, ProbeResult, run_probes, spread
from netsim.probe.sources import source_netns

__all__ = ["Probe", "ProbeResult", "run_probes", "source_netns", "spread"]
