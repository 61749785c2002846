"""Scenarios: a cluster, manifests and ordered steps with expectations, run to a report.

`format` parses and validates (all errors before anything is built); `runner` acts on a cluster through
`netsim.Cluster` only (the methods `api.ScenarioCluster` lists; `api.FakeCluster` for tests); `report`
renders JSON / JUnit / text. Probe selectors (`ns/pod`, `svc/NS/NAME`, ...) are `netsim.model.targets`,
shared with the CLI, the API and trace.
"""
