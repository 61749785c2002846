"""Traffic load: `netsim load` and the scenario step `load` (requests, outcomes, latency, a series)."""
