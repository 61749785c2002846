"""Scenario parsing: every step type accepted, and invalid scenarios rejected naming file, step and field."""

from __future__ import annotations

import pytest
from conftest import write_scenario

from netsim.model import targets as sel
from netsim.model.errors import SpecError, SpecErrors
from netsim.scenario.format import load_scenario, load_scenario_text, parse_duration, parse_matrix
from netsim.scenario.steps import ANY, CompactExpectation, MatrixExpectation

ALL_STEPS = """
- apply: {file: manifests/deny-all.yaml}
- apply:
    inline:
      apiVersion: v1
      kind: Namespace
      metadata: {name: other}
- delete: {file: manifests/deny-all.yaml}
- delete: {kind: deploy, name: web, namespace: default}
- scale: {name: web, replicas: 5}
- rollout: {action: update, name: web, image: "nginx:1.26"}
- rollout: {action: undo, name: web, toRevision: 1}
- rollout: {action: status, name: web, timeout: 30s}
- kill: {pod: default/client}
- kill: {selector: "app=web", namespace: default}
- node: {action: fail, name: node-2}
- node: {action: restore, name: node-2}
- wait: {for: converged, timeout: 30s}
- wait: {for: {kind: Deployment, name: web, condition: Available}}
- wait: {duration: 100ms}
- wait: converged
- probe: {from: default/client, to: svc/default/web, port: 80, expect: allow, count: 3,
          expectServedBy: "default/*", expectClientIP: 10.244.0.0/16}
- probe: {from: host/client, to: "172.18.0.2:30080", expect: allow}
- reachability:
    from: ["default/*"]
    to: ["default/*"]
    ports: [80, 443]
    protocols: [TCP, UDP]
    expect:
      default: deny
      exceptions:
        - {from: default/client, to: "default/*", port: 80, expect: allow}
- reachability:
    expect: |
      -          default/a  default/b
      default/a  .          X
      default/b  ?          .
- trace: {from: default/client, to: "svc/default/web:80", expect: {verdict: dropped, policy: default/deny-all}}
- trace: {from: node/node-1, to: 10.96.0.10, port: 53, protocol: UDP, expect: {contains: [DNAT], agree: true}}
- spread: {from: default/client, to: svc/default/web, port: 80, count: 300,
           expect: {endpoints: 3, uniform: true, pValue: 0.001}}
- dns: {from: default/client, name: web.default.svc.cluster.local, expect: {addresses: [10.96.0.100]}}
- dns: {from: default/client, name: nope.default.svc.cluster.local, type: A, expect: {rcode: NXDOMAIN}}
- exec: {in: default/client, command: [ip, route], expect: {exitCode: 0, stdoutContains: default}}
- exec: {in: node/node-1, command: [iptables-save]}
- repeat: {every: 100ms, for: 2s, step: {probe: {from: default/client, to: svc/default/web, port: 80}}}
- repeat:
    every: 100ms
    during: {rollout: {action: update, name: web, image: "nginx:1.27"}}
    step: {probe: {from: default/client, to: svc/default/web, port: 80, expect: allow}}
    expect: {maxFailures: 0}
- load:
    from: default/client
    to: svc/default/web
    port: 80
    rate: 200
    duration: 3s
    after: 500ms
    during: {rollout: {action: update, name: web, image: "nginx:1.28"}}
    expect: {maxFailed: 0, minEndpoints: 3, maxP99Ms: 50}
"""


def test_every_step_type_parses(scenario_dir):
    sc = load_scenario(write_scenario(scenario_dir, ALL_STEPS, extra="description: all of them\n"))
    assert sc.name == "quickstart" and sc.description == "all of them"
    assert sc.cluster.name == "qs" and sc.cluster.network.plugin == "calico"
    assert {o.kind for o in sc.manifests} == {"Deployment", "Service", "Pod"}
    types = [s.type for s in sc.steps]
    assert set(types) == {"apply", "delete", "scale", "rollout", "kill", "node", "wait", "probe", "reachability",
                          "trace", "spread", "dns", "exec", "repeat", "load"}
    by_index = {s.index: s for s in sc.steps}
    assert by_index[0].params.objects[0].kind == "NetworkPolicy"
    assert by_index[3].params.refs[0].text == "Deployment default/web"
    assert by_index[4].params.kind == "Deployment" and by_index[4].params.replicas == 5
    assert by_index[7].params.timeout == 30.0
    assert by_index[9].params.selector.describe() == "app=web"
    assert by_index[14].params.duration == pytest.approx(0.1)
    assert by_index[15].params.mode == "converged"
    probe = by_index[16].params
    assert probe.via == "service" and probe.count == 3 and probe.expect_served_by[0].kind == sel.PODS
    assert by_index[17].params.target.kind == sel.IP_PORT and by_index[17].params.port is None
    assert isinstance(by_index[18].params.expectation, CompactExpectation)
    matrix = by_index[19].params
    assert isinstance(matrix.expectation, MatrixExpectation)
    assert [s.text for s in matrix.sources] == ["default/a", "default/b"]
    assert by_index[20].params.port == 80 and by_index[20].params.target.text == "svc/default/web"
    assert by_index[21].params.port == 53 and by_index[21].params.target.kind == sel.IP
    assert by_index[27].params.duration == 2.0
    repeat = by_index[28].params
    assert repeat.during.type == "rollout" and repeat.step.type == "probe" and repeat.step.path.endswith("step")
    load = by_index[29].params
    assert (load.rate, load.duration, load.after, load.port, load.connections) == (200.0, 3.0, 0.5, 80, None)
    assert load.during.type == "rollout" and dict(load.expect) == {"maxFailed": 0, "minEndpoints": 3, "maxP99Ms": 50}
    assert by_index[29].describe() == ("load default/client -> svc/default/web:80/TCP 200/s for 3s during "
                                       "[rollout update Deployment default/web image=nginx:1.28]")


def test_inline_cluster_and_manifests():
    text = """
apiVersion: netsim/v1alpha1
kind: Scenario
metadata: {name: inline}
cluster: {nodes: 2, network: {plugin: flannel, backend: host-gw}}
manifests:
  - apiVersion: v1
    kind: Pod
    metadata: {name: a, namespace: default}
    spec: {containers: [{name: c, image: busybox}]}
  - |
    apiVersion: v1
    kind: Namespace
    metadata: {name: x}
steps:
  - wait: 1s
"""
    sc = load_scenario_text(text, "inline.yaml")
    assert sc.cluster.name == "inline" and len(sc.cluster.nodes) == 2
    assert [o.kind for o in sc.manifests] == ["Pod", "Namespace"]


def test_default_cluster_when_absent():
    sc = load_scenario_text("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: d}\n"
                            "steps: [{wait: 1s}]\n", "d.yaml")
    assert sc.cluster.name == "d" and len(sc.cluster.nodes) == 3


def test_parse_duration():
    assert parse_duration("100ms") == pytest.approx(0.1)
    assert parse_duration("1m30s") == 90
    assert parse_duration(2) == 2.0
    for bad in ("2 s", "s", "", "1x", True, -1):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_parse_matrix_forms():
    rows, cols, cells = parse_matrix("""
    +-----------+-----+-----+
    | -         | x/a | x/b |   # pasted from a table
    +-----------+-----+-----+
    | x/a       | .   | X   |
    | x/b       | x   | ?   |
    +-----------+-----+-----+
    """)
    assert rows == ("x/a", "x/b") and cols == ("x/a", "x/b")
    assert cells == ((True, False), (False, ANY))
    rows, cols, cells = parse_matrix("- y/a y/b y/c\nx/a .X.\n")
    assert cells == ((True, False, True),)
    with pytest.raises(ValueError, match="line 2: row x/a has 1 mark"):
        parse_matrix("- y/a y/b\nx/a .\n")
    with pytest.raises(ValueError, match="unknown mark 'o'"):
        parse_matrix("- y/a y/b\nx/a . o\n")


# (steps YAML, expected field, message fragment); each names file, scenario, step index and field.
INVALID_STEPS = [
    ("- prob: {from: default/client}", "steps[0]", "unknown step type 'prob'"),
    ("- {probe: {from: default/a, to: x/b, port: 80}, wait: 1s}", "steps[0]", "single-key mapping"),
    ("- probe: {from: default/client, to: svc/default/web, port: 80, expect: maybe}",
     "steps[0].probe.expect", "'maybe' is not one of allow, deny"),
    ("- probe: {from: default/client, to: svc/default/web}", "steps[0].probe.port", "is required"),
    ("- probe: {to: svc/default/web, port: 80}", "steps[0].probe.from", "is required"),
    ("- probe: {from: svc/default/web, to: default/a, port: 80}", "steps[0].probe.from", "cannot be a source"),
    ("- probe: {from: default/a, to: default/b, port: 70000}", "steps[0].probe.port", "at most 65535"),
    ("- probe: {from: default/a, to: default/b, port: 80, protocol: ICMP}", "steps[0].probe.protocol",
     "not one of TCP, UDP, SCTP"),
    ("- probe: {from: default/a, to: default/b, port: 80, via: service}", "steps[0].probe.via",
     "needs a Service"),
    ("- probe: {from: default/a, to: default/b, port: 80, colour: red}", "steps[0].probe.colour",
     "unknown field"),
    ("- probe: {from: node/node-9, to: default/b, port: 80}", "steps[0].probe.from", "no node 'node-9'"),
    ("- probe: {from: host/nobody, to: default/b, port: 80}", "steps[0].probe.from", "no external host"),
    ("- probe: {from: default/a, to: default/b, port: 80, expect: deny, expectServedBy: default/b}",
     "steps[0].probe.expectServedBy", "denied"),
    ("- probe: {from: default/a, to: svc/default/web, port: 80, expectClientIP: 10.0.0.300}",
     "steps[0].probe.expectClientIP", "not an IPv4"),
    ("- probe: {from: default/a, to: '172.18.0.2:30080', port: 80}", "steps[0].probe.port", "conflicts"),
    ("- wait: 1s\n- scale: {name: web}", "steps[1].scale.replicas", "is required"),
    ("- scale: {kind: Service, name: web, replicas: 1}", "steps[0].scale.kind", "not one of"),
    ("- scale: {name: web, replicas: -1}", "steps[0].scale.replicas", "at least 0"),
    ("- rollout: {action: update, name: web}", "steps[0].rollout.image", "needs an image or env"),
    ("- rollout: {action: restart, name: web}", "steps[0].rollout.action", "not one of update, undo, status"),
    ("- rollout: {action: status, name: web, toRevision: 2}", "steps[0].rollout.toRevision", "only rollout undo"),
    ("- rollout: {action: undo, name: web, image: x}", "steps[0].rollout.image", "only rollout update"),
    ("- rollout: {action: update, name: web, env: {A: 1}}", "steps[0].rollout.env.A", "must be a string"),
    ("- kill: {}", "steps[0].kill", "exactly one of pod"),
    ("- kill: {pod: 'default/*'}", "steps[0].kill.pod", "one pod"),
    ("- kill: {selector: 'app'}", "steps[0].kill.selector", "key=value"),
    ("- node: {action: fail, name: node-7}", "steps[0].node.name", "no node 'node-7'"),
    ("- node: {action: reboot, name: node-1}", "steps[0].node.action", "not one of fail, restore"),
    ("- wait: {duration: 2 s}", "steps[0].wait.duration", "not a duration"),
    ("- wait: {for: converged, duration: 1s}", "steps[0].wait", "exactly one of"),
    ("- wait: {for: {kind: Gizmo, name: x}}", "steps[0].wait.for.kind", "unknown kind"),
    ("- wait: {for: {kind: Deployment, name: web, condition: Happy}}", "steps[0].wait.for.condition",
     "not one of"),
    ("- reachability: {from: default/a, to: default/b}", "steps[0].reachability.expect", "is required"),
    ("- reachability: {from: default/a, to: default/b, expect: {default: maybe}}",
     "steps[0].reachability.expect.default", "not one of allow, deny"),
    ("- reachability: {from: default/a, to: default/b, expect: {default: deny, exceptions: "
     "[{from: default/a, to: default/b, expect: permit}]}}",
     "steps[0].reachability.expect.exceptions[0].expect", "not one of allow, deny"),
    ("- reachability: {from: default/a, to: default/b, ports: [80, http], expect: {default: allow}}",
     "steps[0].reachability.ports[1]", "port number"),
    ("- reachability: {from: [default/a, 'x'], to: default/b, expect: {default: allow}}",
     "steps[0].reachability.from[1]", "not a selector"),
    ("- reachability:\n    expect: |\n      - x/a x/b\n      x/a . X\n      x/b .\n",
     "steps[0].reachability.expect", "line 3: row x/b has 1 mark(s) for 2"),
    ("- reachability:\n    expect: |\n      - x/a x/b\n      x/a . Y\n",
     "steps[0].reachability.expect", "unknown mark 'Y'"),
    ("- reachability:\n    expect: |\n      - x/a x/a\n      x/a . X\n",
     "steps[0].reachability.expect", "appears twice"),
    ("- trace: {from: 'default/*', to: svc/default/web}", "steps[0].trace.from", "one endpoint"),
    ("- trace: {from: default/a, to: 'svc/default/web:80', port: 81}", "steps[0].trace.port", "conflicts"),
    ("- trace: {from: default/a, to: svc/default/web, expect: {verdict: lost}}",
     "steps[0].trace.expect.verdict", "not one of delivered"),
    ("- trace: {from: default/a, to: svc/default/web, expect: {policy: deny-all}}",
     "steps[0].trace.expect.policy", "namespace/name"),
    ("- spread: {from: default/a, to: default/b, port: 80, expect: {endpoints: 2}}", "steps[0].spread.to",
     "Service"),
    ("- spread: {from: default/a, to: svc/default/web, port: 80}", "steps[0].spread.expect", "is required"),
    ("- spread: {from: default/a, to: svc/default/web, port: 80, expect: {uniform: true, pValue: 2}}",
     "steps[0].spread.expect.pValue", "probability"),
    ("- spread: {from: default/a, to: svc/default/web, port: 80, count: 4, expect: {endpoints: 3, uniform: true}}",
     "steps[0].spread.count", "too few"),
    ("- spread: {from: default/a, to: svc/default/web, port: 80, expect: {}}", "steps[0].spread.expect",
     "endpoints"),
    ("- dns: {from: 'default/*', name: web, expect: {rcode: NOERROR}}", "steps[0].dns.from", "one pod"),
    ("- dns: {from: default/a, name: 'bad name', expect: {rcode: NOERROR}}", "steps[0].dns.name", "DNS name"),
    ("- dns: {from: default/a, name: web, type: MX, expect: {rcode: NOERROR}}", "steps[0].dns.type",
     "not one of"),
    ("- dns: {from: default/a, name: web, expect: {addresses: [not-an-ip]}}",
     "steps[0].dns.expect.addresses[0]", "not an IP"),
    ("- dns: {from: default/a, name: web, expect: {rcode: NXDOMAIN, addresses: [10.0.0.1]}}",
     "steps[0].dns.expect.addresses", "no addresses"),
    ("- exec: {in: default/a, command: []}", "steps[0].exec.command", "must not be empty"),
    ("- exec: {in: default/a, command: 'ip route'}", "steps[0].exec.command", "must be a list"),
    ("- exec: {in: 'default/*', command: [ls]}", "steps[0].exec.in", "one pod, node or host"),
    ("- exec: {in: default/a, command: [ls], expect: {exitCode: 300}}", "steps[0].exec.expect.exitCode",
     "at most 255"),
    ("- repeat: {every: 100ms, step: {probe: {from: default/a, to: default/b, port: 80}}}", "steps[0].repeat",
     "exactly one of for"),
    ("- repeat: {every: 1s, for: 100ms, step: {probe: {from: default/a, to: default/b, port: 80}}}",
     "steps[0].repeat.for", "shorter than every"),
    ("- repeat: {every: 100ms, for: 1s, step: {scale: {name: web, replicas: 1}}}",
     "steps[0].repeat.step.scale", "check step"),
    ("- repeat: {every: 100ms, for: 1s, step: {probe: {from: default/a, to: default/b, port: 80, expect: sometimes}}}",
     "steps[0].repeat.step.probe.expect", "not one of allow, deny"),
    ("- repeat: {every: 100ms, during: {rollout: {action: update, name: web}}, "
     "step: {probe: {from: default/a, to: default/b, port: 80}}}",
     "steps[0].repeat.during.rollout.image", "needs an image"),
    ("- apply: {file: manifests/missing.yaml}", "steps[0].apply.file", "no such file"),
    ("- apply: {file: a.yaml, inline: {}}", "steps[0].apply", "exactly one of file or inline"),
    ("- delete: {name: web}", "steps[0].delete.kind", "is required"),
    ("- delete: {kind: Gizmo, name: web}", "steps[0].delete.kind", "unknown kind"),
    ("- probe: [from, to]", "steps[0].probe", "must be a mapping"),
    ("- load: {from: default/a, to: svc/default/web}", "steps[0].load", "needs rate"),
    ("- load: {from: default/a, to: svc/default/web, rate: 0}", "steps[0].load.rate", "requests per second"),
    ("- load: {from: default/a, to: svc/default/web, rate: 10, protocol: SCTP}", "steps[0].load.protocol",
     "not one of TCP, UDP"),
    ("- load: {from: default/a, to: svc/default/web, connections: 0}", "steps[0].load.connections", "at least 1"),
    ("- load: {from: default/a, to: svc/default/web, rate: 10, after: 1s}", "steps[0].load.after",
     "only means something with during"),
    ("- load: {from: default/a, to: svc/default/web, rate: 10, duration: 1s, after: 2s, during: {wait: 1s}}",
     "steps[0].load.after", "shorter than the load's duration"),
    ("- load: {from: default/a, to: svc/default/web, rate: 10, expect: {maxLoss: 0}}", "steps[0].load.expect.maxLoss",
     "unknown field"),
    ("- load: {from: default/a, to: svc/default/web, rate: 10, expect: {maxFailed: -1}}",
     "steps[0].load.expect.maxFailed", "at least 0"),
    ("- load: {from: default/a, to: svc/default/web, rate: 10, during: {load: {from: default/a, to: default/b, "
     "rate: 1}}}", "steps[0].load.during.load", "cannot run inside load"),
]


@pytest.mark.parametrize("steps,field,message", INVALID_STEPS, ids=[f"{i:02d}-{c[1]}" for i, c in
                                                                     enumerate(INVALID_STEPS)])
def test_invalid_steps_name_file_step_and_field(scenario_dir, steps, field, message):
    path = write_scenario(scenario_dir, steps)
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_scenario(path)
    errors = info.value.errors if isinstance(info.value, SpecErrors) else [info.value]
    first = errors[0]
    assert first.source.file == str(path)
    assert first.obj == "Scenario quickstart"
    assert first.field == field, first.render()
    assert message in first.message, first.render()
    assert first.render().startswith(f"{path}: Scenario quickstart: field {field}: ")


def test_at_least_25_invalid_cases():
    assert len(INVALID_STEPS) >= 25


INVALID_TOP = [
    ("apiVersion: v1\nkind: Scenario\nmetadata: {name: t}\nsteps: [{wait: 1s}]\n", "apiVersion", "must be"),
    ("apiVersion: netsim/v1alpha1\nkind: Cluster\nmetadata: {name: t}\nspec: {}\n", "kind",
     "must be Scenario"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nsteps: [{wait: 1s}]\n", "metadata", "is required"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: Bad_Name}\nsteps: [{wait: 1s}]\n",
     "metadata.name", "RFC 1123"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\nsteps: []\n", "steps", "at least one"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\n", "steps", "is required"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\nstep: []\nsteps: [{wait: 1s}]\n",
     "step", "unknown field"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ncluster: {nodes: 0}\n"
     "steps: [{wait: 1s}]\n", "cluster.spec.nodes", "between 1"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ncluster: {file: nope.yaml}\n"
     "steps: [{wait: 1s}]\n", "cluster.file", "no such file"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ncluster: {network: {plugin: weave}}\n"
     "steps: [{wait: 1s}]\n", "cluster.spec.network.plugin", "not one of"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ntimeouts: {build: 0s}\n"
     "steps: [{wait: 1s}]\n", "timeouts.build", "longer than zero"),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ntimeouts: {settle: soon}\n"
     "steps: [{wait: 1s}]\n", "timeouts.settle", ""),
    ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ntimeouts: {apply: 1s}\n"
     "steps: [{wait: 1s}]\n", "timeouts.apply", "unknown field"),
]


@pytest.mark.parametrize("text,field,message", INVALID_TOP)
def test_invalid_top_level(tmp_path, text, field, message):
    with pytest.raises(SpecError) as info:
        load_scenario_text(text, "t.yaml", base_dir=str(tmp_path))
    assert info.value.field == field, info.value.render()
    assert message in info.value.message


def test_bad_inline_manifest_fails_before_anything_is_built(scenario_dir):
    manifests = ("manifests:\n  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n"
                 "    spec: {replicas: many}\n")
    with pytest.raises(SpecErrors) as info:
        load_scenario(write_scenario(scenario_dir, "- wait: 1s", manifests=manifests))
    e = info.value.errors[0]
    assert e.field.startswith("manifests[0].spec") and e.obj == "Deployment default/web"


def test_bad_manifest_file_names_the_manifest_file(scenario_dir):
    (scenario_dir / "manifests" / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                                                         "spec: {containers: []}\n")
    with pytest.raises(SpecErrors) as info:
        load_scenario(write_scenario(scenario_dir, "- wait: 1s", manifests="manifests: [{file: manifests/bad.yaml}]"))
    assert any(e.source.file.endswith("bad.yaml") for e in info.value.errors)
    # the same in an apply step: a leading error names the step, then the manifest's own
    with pytest.raises(SpecErrors) as info:
        load_scenario(write_scenario(scenario_dir, "- apply: {file: manifests/bad.yaml}"))
    assert info.value.errors[0].field == "steps[0].apply"
    assert info.value.errors[1].source.file.endswith("bad.yaml")


def test_duplicate_objects_across_manifests(scenario_dir):
    with pytest.raises(SpecErrors, match="duplicate object: Deployment default/web"):
        load_scenario(write_scenario(scenario_dir, "- wait: 1s",
                                     manifests="manifests: [{file: manifests/web.yaml}, {file: manifests/web.yaml}]"))


def test_yaml_syntax_and_duplicate_keys(tmp_path):
    with pytest.raises(SpecError, match="YAML syntax error"):
        load_scenario_text("a: [", "x.yaml")
    with pytest.raises(SpecError, match="appears twice"):
        load_scenario_text("apiVersion: netsim/v1alpha1\nkind: Scenario\nkind: Scenario\n", "x.yaml")
    with pytest.raises(SpecError, match="exactly one document"):
        load_scenario_text("a: 1\n---\nb: 2\n", "x.yaml")
