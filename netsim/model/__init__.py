"""Pure model: typed objects read from manifests and the Cluster spec. No kernel, no I/O beyond reading files."""
