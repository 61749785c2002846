"""Scenarios: a cluster, manifests and ordered steps with expectations, run to a report.

`format` parses and validates (all errors before anything is built), `runner` executes against the
abstract `api.ClusterAPI`, `report` renders JSON / JUnit / text. `selectors` is shared with `netsim probe`.
"""
