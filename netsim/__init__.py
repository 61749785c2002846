"""netsim: the networking half of Kubernetes, built from real Linux kernel objects on one machine."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from netsim import Cluster` without importing the kernel layer for every `import netsim`.
    if name == "Cluster":
        from netsim.api import Cluster
        return Cluster
    raise AttributeError(name)
