"""Scenarios: a cluster, manifests and ordered steps with expectations, run to a report.

`format` parses and validates (all errors before anything is built), `runner` executes against the
abstract `api.ClusterAPI`, `report` renders JSON / JUnit / text. Probe selectors
(`ns/pod`, `svc/NS/NAME`, ...) are `netsim.model.targets`, shared with the CLI, the API and trace.
"""
