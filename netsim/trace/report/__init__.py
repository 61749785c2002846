"""Assembly and reporting for `netsim trace`: `observed` turns what the kernel reported into the observed
path, `compare` matches it against the simulated branches and names disagreements, `text` renders a
report (one line per hop)."""
