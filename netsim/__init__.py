"""netsim: the networking half of Kubernetes, built from real Linux kernel objects on one machine."""

__version__ = "0.1.0"
