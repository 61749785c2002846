"""The `netsim` command line."""
