"""The runner against FakeCluster: every step type, expectations, abort rules, teardown, progress."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest
from conftest import write_scenario

from netsim.model.errors import NetsimError
from netsim.scenario.api import FakeCluster, ScenarioCluster
from netsim.scenario.format import load_scenario, load_scenario_text
from netsim.scenario.runner import ERROR, FAIL, PASS, SKIPPED, ProgressEvent, Runner, run_scenario

PODS = ["default/client", "default/a", "default/b", "default/web-1", "default/web-2", "default/web-3",
        "other/x"]
WEB = {"default/web": ["default/web-1", "default/web-2", "default/web-3"]}


def scenario(steps: str, *, manifests: str = "[]", base_dir: str = "."):
    text = (f"apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {{name: t}}\n"
            f"cluster: {{nodes: 3, externalHosts: [{{name: client, ip: 203.0.113.10}}]}}\n"
            f"manifests: {manifests}\nsteps:\n" + textwrap.indent(textwrap.dedent(steps).strip(), "  ") + "\n")
    return load_scenario_text(text, "t.yaml", base_dir=base_dir)


def fake(**kw) -> FakeCluster:
    kw.setdefault("pods", PODS)
    kw.setdefault("services", WEB)
    return FakeCluster(**kw)


def run(steps: str, api: FakeCluster | None = None, **opts):
    api = api or fake()
    return api, Runner(api, **opts).run(scenario(steps))


def test_fake_satisfies_protocol():
    assert isinstance(fake(), ScenarioCluster)


def _params(fn) -> list[tuple[str, str, object]]:
    import inspect
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]


def test_the_runner_needs_nothing_but_netsim_cluster():
    """Every method the runner calls (ScenarioCluster) is netsim.Cluster's, with the same parameters, and
    the fake's too: the runner acts on a real cluster through the front door alone."""
    from netsim import Cluster
    methods = [m for m in vars(ScenarioCluster) if not m.startswith("_")]
    assert {"apply", "probe", "trace_summary", "dns_lookup", "kill_pods", "wait_for"} <= set(methods)
    for m in methods:
        assert _params(getattr(Cluster, m)) == _params(getattr(ScenarioCluster, m)), m
        assert _params(getattr(FakeCluster, m)) == _params(getattr(ScenarioCluster, m)), m
    assert isinstance(vars(Cluster)["up"], classmethod)  # Runner(Cluster): Cluster.up(spec) builds


# -- the quickstart scenario from docs/architecture.md, against a fake that honours a deny-all policy ---------


def policy_aware_fake() -> FakeCluster:
    api: FakeCluster

    def connect(src, tgt, port, proto, via):
        return not any(k[0] == "NetworkPolicy" and k[2] == "deny-all" for k in api.objects)

    def trace(src, dst, port, proto):
        denied = not connect(src, dst, port, proto, "pod")
        return {"verdict": "dropped" if denied else "delivered", "policy": "default/deny-all" if denied else None,
                "agree": True, "hops": [{"description": "default/client eth0"}, "cali123 -> node-1",
                                        "DNAT 10.96.0.100:80 -> 10.244.1.2:80", "filter cali-tw-... DROP"]}

    def explain(src, dst, port, proto):
        return f"{src} -> {dst}:{port}/{proto}: denied\n  ingress: isolated by default/deny-all"

    api = fake(connect=connect, scripted={"trace_summary": trace, "explain": explain})
    return api


def test_quickstart_passes(scenario_dir):
    path = write_scenario(scenario_dir, """
        - probe: {from: default/client, to: svc/default/web, port: 80, protocol: TCP, expect: allow}
        - apply: {file: manifests/deny-all.yaml}
        - probe: {from: default/client, to: svc/default/web, port: 80, expect: deny}
        - trace: {from: default/client, to: "svc/default/web:80", expect: {verdict: dropped, policy: default/deny-all}}
    """)
    api = policy_aware_fake()
    result = run_scenario(load_scenario(path), api)
    assert result.passed, [(s.status, s.failures, s.error) for s in result.steps]
    methods = [m for m, _ in api.calls]
    assert methods[:3] == ["up", "apply", "wait_converged"]
    assert methods[-1] == "down"
    assert methods.count("wait_converged") == 2  # build, then settle after the apply
    blocked = result.steps[2].observed
    assert blocked["results"][0]["connected"] is False
    assert blocked["explanations"][0]["reason"].endswith("isolated by default/deny-all")
    assert result.steps[0].observed["connected"] == 1 and "explanations" not in result.steps[0].observed


def test_deliberately_failing_scenario_reports_useful_message(scenario_dir):
    path = write_scenario(scenario_dir, """
        - probe: {from: default/client, to: svc/default/web, port: 80, expect: deny}
        - probe: {from: default/client, to: svc/default/web, port: 80, expect: allow}
    """)
    result = run_scenario(load_scenario(path), fake())
    assert not result.passed
    first = result.steps[0]
    assert first.status == FAIL
    msg = first.failures[0].message
    assert "expected deny" in msg and "1 of 1 attempt(s) connected" in msg and "default/web-" in msg
    assert result.steps[1].status == PASS  # a failed expectation does not stop the run
    assert result.counts == {"pass": 1, "fail": 1, "error": 0, "skipped": 0}


# -- mutating steps ------------------------------------------------------------------------------------


def test_mutating_steps_call_the_api(scenario_dir):
    path = write_scenario(scenario_dir, """
        - apply: {file: manifests/deny-all.yaml}
        - delete: {file: manifests/deny-all.yaml}
        - delete: {kind: svc, name: web}
        - scale: {name: web, replicas: 5}
        - rollout: {action: update, name: web, image: "nginx:1.26", env: {MODE: fast}}
        - rollout: {action: undo, name: web, toRevision: 1}
        - rollout: {action: status, name: web}
        - kill: {pod: default/client}
        - kill: {selector: {matchLabels: {app: web}}, namespace: default}
        - node: {action: fail, name: node-2}
        - node: {action: restore, name: node-2}
        - wait: {for: converged}
        - wait: {for: {kind: Deployment, name: web, condition: Available}, timeout: 5s}
    """)
    api = fake()
    result = run_scenario(load_scenario(path), api)
    assert result.passed, [(s.description, s.failures, s.error) for s in result.steps]
    assert api.called("apply")[1][0][0]["kind"] == "NetworkPolicy" and api.called("apply")[1][1] is False
    assert api.called("delete") == [("NetworkPolicy", "deny-all", "default", False),
                                    ("Service", "web", "default", False)]
    assert api.called("scale") == [("Deployment", "web", 5, "default", False)]
    assert [c[0] for c in api.called("rollout")] == ["update", "undo", "status"]
    assert api.called("rollout")[0][3] == "nginx:1.26" and api.called("rollout")[1][4] == 1
    assert api.called("kill_pods")[0][:2] == ("default", "client")
    assert api.called("kill_pods")[1][2].describe() == "app=web"
    assert api.called("node_fail") == [("node-2",)] and api.called("node_restore") == [("node-2",)]
    assert api.called("wait_for")[0] == ("Deployment", "web", "default", "Available", 5.0)
    assert result.steps[7].observed["killed"] == ["default/client"]
    assert result.steps[4].observed["rollout"]["revision"] == 2


def test_rollout_status_incomplete_fails():
    api = fake(scripted={"rollout": {"revision": 3, "complete": False}})
    _, result = run("- rollout: {action: status, name: web, timeout: 2s}", api)
    assert result.steps[0].status == FAIL
    assert "did not complete within 2s" in result.steps[0].failures[0].message


def test_wait_timeouts_fail():
    api = fake(scripted={"wait_converged": [True, False], "wait_for": False})
    _, result = run("""
        - wait: {for: converged, timeout: 3s}
        - wait: {for: {kind: Pod, name: client, condition: Ready}}
    """, api)
    assert [s.status for s in result.steps] == [FAIL, FAIL]
    assert "timed out after 3s waiting for convergence" in result.steps[0].failures[0].message


def test_wait_duration_sleeps():
    _, result = run("- wait: 50ms")
    assert result.steps[0].status == PASS and result.steps[0].observed["waitedMs"] >= 45


def test_settle_timeout_after_mutation_is_a_failure():
    api = fake(scripted={"wait_converged": [True, False]})
    _, result = run("- scale: {name: web, replicas: 1}", api, settle_timeout=7)
    assert result.steps[0].status == FAIL
    assert "did not converge within 7s after the scale" in result.steps[0].failures[0].message


def test_the_scenarios_timeouts_replace_the_runners():
    """`timeouts: {build, settle}` in the file: the build's convergence wait and each mutating step's."""
    text = ("apiVersion: netsim/v1alpha1\nkind: Scenario\nmetadata: {name: t}\ncluster: {nodes: 3}\n"
            "timeouts: {build: 30m, settle: 45s}\nsteps:\n  - scale: {name: web, replicas: 1}\n")
    sc = load_scenario_text(text, "t.yaml")
    assert (sc.build_timeout, sc.settle_timeout) == (1800.0, 45.0)
    api = fake(scripted={"wait_converged": [True, False]})
    result = Runner(api, settle_timeout=7, build_timeout=9).run(sc)
    assert [a[0] for m, a in api.calls if m == "wait_converged"][:2] == [1800.0, 45.0], api.calls
    assert "did not converge within 45s after the scale" in result.steps[0].failures[0].message
    assert scenario("- wait: 1ms").build_timeout is None  # absent: the runner's own


def test_mutating_error_aborts_later_steps():
    api = fake(scripted={"kill_pods": lambda *a: []})
    _, result = run("""
        - kill: {pod: default/ghost}
        - probe: {from: default/client, to: svc/default/web, port: 80}
    """, api)
    assert [s.status for s in result.steps] == [ERROR, SKIPPED]
    assert "no pod to kill: default/ghost" in result.steps[0].error
    assert "steps[0] (kill) errored" in result.aborted
    assert api.called("down")  # teardown still ran


def test_check_error_does_not_abort():
    api = fake(scripted={"dns_lookup": NetsimError("resolver exploded")})
    _, result = run("""
        - dns: {from: default/client, name: web.default.svc.cluster.local, expect: {rcode: NOERROR}}
        - probe: {from: default/client, to: svc/default/web, port: 80}
    """, api)
    assert [s.status for s in result.steps] == [ERROR, PASS]
    assert result.steps[0].error == "NetsimError: resolver exploded"
    assert not result.passed


def test_fail_fast_skips_after_failure():
    _, result = run("""
        - probe: {from: default/client, to: svc/default/web, port: 80, expect: deny}
        - probe: {from: default/client, to: svc/default/web, port: 80}
    """, fail_fast=True)
    assert [s.status for s in result.steps] == [FAIL, SKIPPED]


# -- build and teardown --------------------------------------------------------------------------------


def test_build_failure_skips_steps():
    """A failed `up` removed what it made (netsim.Cluster.up): there is no cluster to take down."""
    api = fake(scripted={"up": RuntimeError("no CAP_NET_ADMIN")})
    _, result = run("- probe: {from: default/client, to: svc/default/web, port: 80}", api)
    assert result.build.status == ERROR and "no CAP_NET_ADMIN" in result.build.error
    assert [s.status for s in result.steps] == [SKIPPED]
    assert not result.passed
    assert not api.called("down") and result.teardown.status == PASS


def test_build_that_does_not_converge_still_tears_down():
    api = fake(converge=False)
    _, result = run("- wait: 1ms", api, build_timeout=1)
    assert result.build.status == ERROR and api.called("down")


def test_build_not_converging_is_an_error():
    api = fake(converge=False)
    _, result = run("- wait: 1ms", api, build_timeout=9)
    assert result.build.status == ERROR and "did not converge within 9s" in result.build.error


def test_keep_skips_teardown():
    api, result = run("- wait: 1ms", keep=True)
    assert not api.called("down") and result.teardown is None


def test_teardown_runs_when_the_run_itself_raises():
    api = fake()

    def progress(event: ProgressEvent) -> None:
        if event.kind == "step-start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(api, progress=progress).run(scenario("- wait: 1ms"))
    assert api.called("down")


def test_teardown_error_is_reported_not_raised():
    api = fake(scripted={"down": RuntimeError("busy")})
    _, result = run("- wait: 1ms", api)
    assert result.passed and result.teardown.status == ERROR and "busy" in result.teardown.error


def test_progress_events():
    events: list[ProgressEvent] = []
    Runner(fake(), progress=events.append).run(scenario("- wait: 1ms\n- wait: 1ms"))
    kinds = [e.kind for e in events]
    assert kinds == ["build", "step-start", "step-end", "step-start", "step-end", "teardown", "done"]
    assert events[2].result.status == PASS and events[-1].run is not None and events[1].total == 2


# -- probe ---------------------------------------------------------------------------------------------


def test_probe_served_by_and_client_ip():
    _, result = run("""
        - probe: {from: default/client, to: svc/default/web, port: 80, count: 6, expectServedBy: "default/*",
                  expectClientIP: 10.244.0.0/16}
        - probe: {from: default/client, to: svc/default/web, port: 80, count: 3, expectServedBy: default/web-1}
        - probe: {from: default/client, to: svc/default/web, port: 80, expectClientIP: 172.18.0.0/16}
    """)
    ok, served, client = result.steps
    assert ok.status == PASS and ok.observed["attempts"] == 6 and len(ok.observed["results"]) == 6
    assert served.status == FAIL and "came from outside default/web-1" in served.failures[0].message
    assert client.status == FAIL and "client IP" in client.failures[0].message
    assert client.failures[0].observed == ["10.244.0.2"]


def test_probe_matching_nothing_fails():
    _, result = run("- probe: {from: 'nowhere/*', to: default/a, port: 80}")
    assert result.steps[0].status == FAIL and "matched nothing" in result.steps[0].failures[0].message


def test_probe_blocked_carries_explanation():
    api = fake(deny=[("default/client", "default/a", 80)])
    _, result = run("- probe: {from: default/client, to: default/a, port: 80, expect: allow}", api)
    step = result.steps[0]
    assert step.status == FAIL and "outcome timeout" in step.failures[0].message
    assert step.observed["explanations"] == [{"from": "default/client", "to": "default/a", "port": 80,
                                              "protocol": "TCP",
                                              "reason": "default/client -> default/a:80/TCP: denied by fake policy"}]
    assert api.called("probe")[0] == ("default/client", "default/a", [80], ["TCP"], "pod", 1)


def test_probe_nodeport_target_carries_its_port():
    api = fake()
    _, result = run("- probe: {from: host/client, to: '172.18.0.2:30080'}", api)
    assert api.called("probe")[0][2] is None and api.called("probe")[0][4] == "service"
    assert result.steps[0].observed["results"][0]["port"] == 30080


# -- reachability --------------------------------------------------------------------------------------


def test_reachability_compact_pass_and_fail():
    api = fake(deny=[("default/*", "default/b", 80)])
    _, result = run("""
        - reachability:
            from: [default/a, default/client]
            to: [default/a, default/b]
            ports: [80, 81]
            expect:
              default: allow
              exceptions: [{from: "default/*", to: default/b, port: 80, expect: deny}]
        - reachability:
            from: default/a
            to: [default/a, default/b]
            expect: {default: allow}
    """, api)
    good, bad = result.steps
    assert good.status == PASS and good.observed["cells"] == 8
    assert bad.status == FAIL
    assert bad.observed["mismatches"] == [{"from": "default/a", "to": "default/b", "port": 80, "protocol": "TCP",
                                           "expected": "allow", "observed": "deny", "model": "deny",
                                           "explain": "default/a -> default/b:80/TCP: denied by fake policy"}]
    assert "1 of 2 cell(s) differ: default/a -> default/b:80/TCP expected allow observed deny" in \
        bad.failures[0].message
    assert bad.observed["matrix"]["TCP/80"].splitlines()[1].split() == ["default/a", ".", "X"]
    assert bad.observed["expectedMatrix"]["TCP/80"].splitlines()[1].split() == ["default/a", ".", "."]


def test_reachability_matrix_pass_fail_and_dont_care():
    api = fake(deny=[("default/a", "default/b", None)], model_deny=[])
    _, result = run("""
        - reachability:
            expect: |
              -          default/a  default/b
              default/a  .          X
              default/b  .          .
        - reachability:
            expect: |
              -          default/a  default/b
              default/a  .          .
              default/b  ?          .
    """, api)
    good, bad = result.steps
    assert good.status == PASS
    assert [c[:2] for c in api.called("probe")][:4] == [("default/a", "default/a"), ("default/a", "default/b"),
                                                        ("default/b", "default/a"), ("default/b", "default/b")]
    assert bad.status == FAIL and len(bad.observed["mismatches"]) == 1
    assert bad.observed["mismatches"][0]["model"] == "allow"  # the model disagrees with the data plane


def test_reachability_matrix_missing_and_uncovered_cells():
    api = fake(pods=["default/a"])
    _, result = run("""
        - reachability:
            expect: |
              -          default/a  default/b
              default/a  .          .
        - reachability:
            from: "default/*"
            to: [default/a]
            expect: |
              -          default/a
              default/b  .
    """, api)
    missing, uncovered = result.steps
    assert missing.status == FAIL and "never probed" in missing.failures[0].message
    assert uncovered.status == FAIL and "not in the expected matrix" in uncovered.failures[0].message


def test_reachability_mixed_attempts_fail():
    flip = iter([True, False] * 10)
    api = fake(connect=lambda *a: next(flip))
    _, result = run("""
        - reachability: {from: default/a, to: default/b, count: 2, expect: {default: allow}}
    """, api)
    assert result.steps[0].observed["mismatches"][0]["observed"] == "mixed"


# -- trace, spread, dns, exec --------------------------------------------------------------------------


def test_trace_expectations():
    hops = ["default/client eth0", {"description": "DNAT to 10.244.1.2:80"}, "vxlan.calico encap", "default/web-1"]
    api = fake(scripted={"trace_summary": {"verdict": "delivered", "policy": None, "policies": ["default/allow-web"],
                                   "hops": hops, "agree": False, "disagreements": ["hop 3"]}})
    _, result = run("""
        - trace: {from: default/client, to: "svc/default/web:80", expect: {verdict: delivered,
                  policy: default/allow-web, hops: [eth0, DNAT, vxlan], contains: [web-1]}}
        - trace: {from: default/client, to: "svc/default/web:80", expect: {hops: [vxlan, DNAT]}}
        - trace: {from: default/client, to: "svc/default/web:80", expect: {verdict: dropped, agree: true,
                  contains: [SNAT]}}
    """, api)
    good, order, bad = result.steps
    assert good.status == PASS
    assert api.called("trace_summary")[0] == ("default/client", "svc/default/web", 80, "TCP")
    assert order.status == FAIL and "not found in order" in order.failures[0].message
    assert [f.message.split(" ")[0] for f in bad.failures] == ["verdict", "no", "simulated"]
    assert bad.observed["trace"]["hops"] == hops


def test_spread_uniform_round_robin_passes():
    _, result = run("""
        - spread: {from: default/client, to: svc/default/web, port: 80, count: 300,
                   expect: {endpoints: 3, uniform: true}}
    """)
    step = result.steps[0]
    assert step.status == PASS
    assert step.observed["counts"] == {"default/web-1": 100, "default/web-2": 100, "default/web-3": 100}
    assert step.observed["chiSquare"]["pValue"] == 1.0 and step.observed["chiSquare"]["dof"] == 2


def test_spread_skewed_fails_with_statistic():
    weights = {"default/web": ["default/web-1"] * 8 + ["default/web-2", "default/web-3"]}
    _, result = run("""
        - spread: {from: default/client, to: svc/default/web, port: 80, count: 300,
                   expect: {endpoints: 3, uniform: true, pValue: 0.001}}
    """, fake(weights=weights))
    step = result.steps[0]
    assert step.status == FAIL
    assert step.observed["counts"] == {"default/web-1": 240, "default/web-2": 30, "default/web-3": 30}
    assert step.observed["chiSquare"]["chiSquare"] == pytest.approx(294.0)
    assert step.observed["chiSquare"]["pValue"] < 1e-50
    assert "spread is not uniform: chi-square 294.00 with 2 dof" in step.failures[0].message


def test_spread_missing_endpoint_counts_as_zero():
    weights = {"default/web": ["default/web-1", "default/web-2"]}
    _, result = run("""
        - spread: {from: default/client, to: svc/default/web, port: 80, count: 300,
                   expect: {endpoints: 3, uniform: true}}
    """, fake(weights=weights))
    msgs = [f.message for f in result.steps[0].failures]
    assert msgs[0].startswith("2 endpoint(s) answered, expected 3")
    assert msgs[1].startswith("spread is not uniform")


def test_spread_unanswered_requests_fail():
    api = fake(services={"default/web": []})
    _, result = run("- spread: {from: default/client, to: svc/default/web, port: 80, count: 10,"
                    " expect: {endpoints: 1}}", api)
    assert [f.message for f in result.steps[0].failures][0] == "10 of 10 request(s) got no answer"


def test_dns_expectations():
    _, result = run("""
        - dns: {from: default/client, name: web.default.svc.cluster.local, expect: {addresses: [10.96.0.100]}}
        - dns: {from: default/client, name: db.default.svc.cluster.local, expect: {rcode: NXDOMAIN}}
        - dns: {from: default/client, name: db.default.svc.cluster.local, expect: {addresses: [10.96.0.5]}}
    """)
    assert [s.status for s in result.steps] == [PASS, PASS, FAIL]
    assert "resolved to [], expected ['10.96.0.5']" in result.steps[2].failures[0].message


def test_exec_expectations():
    api = fake(scripted={"exec": [(0, "default via 10.244.0.1 dev eth0\n", ""), (1, "", "permission denied")]})
    _, result = run("""
        - exec: {in: default/client, command: [ip, route], expect: {stdoutContains: default via}}
        - exec: {in: node/node-1, command: [iptables-save], expect: {stdoutContains: KUBE-SERVICES}}
    """, api)
    ok, bad = result.steps
    assert ok.status == PASS and ok.observed["exitCode"] == 0
    assert api.called("exec")[1] == ("node/node-1", ["iptables-save"])
    assert [f.message for f in bad.failures] == ["exit code 1, expected 0: permission denied",
                                                 "stdout does not contain 'KUBE-SERVICES'"]


# -- repeat --------------------------------------------------------------------------------------------


def test_repeat_for_counts_iterations():
    api, result = run("- repeat: {every: 10ms, for: 100ms, step: {probe: {from: default/client, to: default/a,"
                      " port: 80}}}")
    step = result.steps[0]
    assert step.status == PASS
    assert 5 <= step.observed["iterations"] <= 11 and step.observed["failed"] == 0
    assert len(api.called("probe")) == step.observed["iterations"]


def test_repeat_during_rollout_detects_an_outage():
    outage = threading.Event()

    def rollout(*args):
        time.sleep(0.05)
        outage.set()
        time.sleep(0.05)
        outage.clear()
        time.sleep(0.05)
        return {"revision": 2, "complete": True}

    api = fake(connect=lambda *a: not outage.is_set(), scripted={"rollout": rollout})
    _, result = run("""
        - repeat:
            every: 10ms
            during: {rollout: {action: update, name: web, image: "nginx:2"}}
            step: {probe: {from: default/client, to: svc/default/web, port: 80}}
    """, api)
    step = result.steps[0]
    assert step.status == FAIL
    obs = step.observed
    assert obs["iterations"] >= 8 and 1 <= obs["failed"] < obs["iterations"]
    assert obs["during"]["status"] == PASS and obs["during"]["observed"]["rollout"]["revision"] == 2
    assert "iteration(s) failed (at most 0 allowed)" in step.failures[0].message
    assert obs["failedIterations"][0]["failures"][0]["message"].startswith("expected allow")


def test_repeat_during_tolerates_max_failures_and_reports_during_error():
    api = fake(scripted={"rollout": RuntimeError("apiserver gone")})
    _, result = run("""
        - repeat:
            every: 10ms
            during: {rollout: {action: update, name: web, image: "nginx:2"}}
            step: {probe: {from: default/client, to: svc/default/web, port: 80}}
            expect: {maxFailures: 3}
        - wait: 1ms
    """, api)
    assert result.steps[0].status == ERROR and "apiserver gone" in result.steps[0].error
    assert result.steps[0].observed["iterations"] >= 1
    assert result.steps[1].status == SKIPPED  # the rollout never happened: later steps are meaningless


def test_load_expectations_pass_and_fail_with_the_numbers():
    api, result = run("""
        - load: {from: default/client, to: svc/default/web, port: 80, rate: 100, duration: 1s,
                 expect: {maxFailed: 0, minEndpoints: 3, maxP99Ms: 5}}
        - load: {from: default/client, to: svc/default/web, port: 80, rate: 100, duration: 1s,
                 expect: {minFailed: 1, minEndpoints: 4}}
    """)
    ok, bad = result.steps
    assert ok.status == PASS and ok.observed["sent"] == 100 and len(ok.observed["byEndpoint"]) == 3, ok.observed
    assert bad.status == FAIL and [f.expected for f in bad.failures] == [{"minFailed": 1}, {"minEndpoints": 4}]
    assert "failed 0 is below minFailed 1 (100 sent, 100 ok" in bad.failures[0].message
    assert api.called("load")[0] == ("default/client", "svc/default/web", 80, "TCP", 100.0, 1.0, None)


def test_load_runs_its_during_step_meanwhile_and_reports_it():
    seen = {}

    def load(*args):
        time.sleep(0.15)
        seen["rollout_done_before_load_returned"] = bool(api.called("rollout"))
        return {"sent": 10, "ok": 7, "refused": 2, "timeout": 1, "reset": 0, "error": 0, "rate": 10.0,
                "latencyMs": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "max": 1.0}, "byEndpoint": {"default/web-1": 7},
                "events": [], "series": [{"second": 0, "sent": 10, "ok": 7}]}
    api = fake(scripted={"load": load, "rollout": {"revision": 2, "complete": True}})
    _, result = run("""
        - load: {from: default/client, to: svc/default/web, port: 80, rate: 10, duration: 1s, after: 50ms,
                 during: {rollout: {action: update, name: web, image: "nginx:2"}}, expect: {maxFailed: 0}}
    """, api)
    step = result.steps[0]
    assert seen["rollout_done_before_load_returned"] and step.observed["during"]["status"] == PASS
    assert step.status == FAIL and step.failures[0].observed == 3 and "refused, 1 timeout" in step.failures[0].message
    errored = fake(scripted={"load": RuntimeError("no such pod")})
    _, result = run("- load: {from: default/client, to: svc/default/web, port: 80, rate: 10}\n- wait: 1ms", errored)
    assert result.steps[0].status == ERROR and "no such pod" in result.steps[0].error


def test_observed_matrix_can_be_pasted_back_as_an_expectation():
    from netsim.scenario.format import parse_matrix
    from netsim.scenario.runner import render_matrix

    marks = {("x/a", "x/a"): ".", ("x/a", "y/long-name"): "X", ("y/b", "x/a"): "?", ("y/b", "y/long-name"): "."}
    text = render_matrix(["x/a", "y/b"], ["x/a", "y/long-name"], lambda r, c: marks[(r, c)])
    rows, cols, cells = parse_matrix(text)
    assert rows == ("x/a", "y/b") and cols == ("x/a", "y/long-name")
    assert cells == ((True, False), ("any", True))
