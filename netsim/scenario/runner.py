"""Run a validated Scenario on a cluster: build, steps in order, expectations, teardown.

The runner acts on the cluster only through `netsim.Cluster` (`Runner(Cluster)`; the methods it calls are
`netsim.scenario.api.ScenarioCluster`), or through `FakeCluster` in tests.

Policy on failures (so a report always says as much as it can):
- an expectation not met fails its step and the run goes on (later steps may still tell something);
- an error (the cluster raised) in a step that changes the cluster (apply, delete, scale, rollout, kill, node,
  wait, or a repeat running one of those) aborts the run: later steps would test a state that never came
  to be, so they are reported as skipped; an error in a check step is recorded and the run goes on;
- a build that fails (up, manifests, convergence) skips every step;
- teardown (`down`) always runs in `finally` unless `keep=True`, also after an exception.

After every mutating step the runner waits for convergence (`settle`), as `netsim apply` does, so the next
probe sees the new state; a timeout there is a failure of that step.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from netsim.model import targets as sel
from netsim.model.errors import NetsimError
from netsim.model.loader import object_ref
from netsim.scenario.api import ClusterFactory, ScenarioCluster
from netsim.scenario.format import Scenario
from netsim.scenario.stats import chi_square_uniform
from netsim.scenario.steps import (
    ANY,
    LOAD_EXPECT,
    MUTATING_STEPS,
    ApplyStep,
    DeleteStep,
    DnsStep,
    ExecStep,
    KillStep,
    LoadStep,
    MatrixExpectation,
    NodeStep,
    ProbeStep,
    ReachabilityStep,
    RepeatStep,
    RolloutStep,
    ScaleStep,
    SpreadStep,
    Step,
    TraceStep,
    WaitStep,
)

PASS, FAIL, ERROR, SKIPPED = "pass", "fail", "error", "skipped"
_MAX_TEXT = 4096  # stdout/stderr kept per exec
_MAX_REPEAT_DETAILS = 10


@dataclass(frozen=True)
class Failure:
    """One expectation not met: what was expected, what was seen, in words and as data."""

    message: str
    expected: Any = None
    observed: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "expected": self.expected, "observed": self.observed}


@dataclass
class StepResult:
    index: int  # position in `steps` (0-based, as error paths say steps[i]); -1 build, -2 teardown
    type: str
    description: str
    spec: Any = None
    path: str = ""
    status: str = PASS
    duration_ms: float = 0.0
    observed: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == PASS


@dataclass
class RunResult:
    scenario: str
    file: str
    description: str
    cluster: dict[str, Any]
    started: str
    duration_s: float = 0.0
    build: StepResult | None = None
    steps: list[StepResult] = field(default_factory=list)
    teardown: StepResult | None = None
    aborted: str | None = None  # why steps were skipped

    @property
    def passed(self) -> bool:
        """Every expectation held: the build worked and every step passed (teardown does not count)."""
        return bool(self.build and self.build.ok) and all(s.ok for s in self.steps)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(s.status for s in self.steps)
        return {k: c.get(k, 0) for k in (PASS, FAIL, ERROR, SKIPPED)}


@dataclass(frozen=True)
class ProgressEvent:
    """What the live display is told: `build`, `step-start`, `step-end`, `teardown`, `done`."""

    kind: str
    total: int
    index: int | None = None
    description: str = ""
    result: StepResult | None = None
    run: RunResult | None = None


Progress = Callable[[ProgressEvent], None]


class _StepError(Exception):
    """Raised by a handler for a condition that makes the step meaningless (not an expectation)."""


class Runner:
    def __init__(self, clusters: ClusterFactory, *, progress: Progress | None = None, keep: bool = False,
                 fail_fast: bool = False, settle: bool = True, settle_timeout: float = 120.0,
                 build_timeout: float = 300.0, explain_limit: int = 20):
        self.clusters = clusters
        self.cluster: ScenarioCluster | None = None
        self.progress = progress
        self.keep = keep
        self.fail_fast = fail_fast
        self.settle = settle
        self.settle_timeout = settle_timeout
        self.build_timeout = build_timeout
        self._settle_limit = settle_timeout  # this run's: the scenario's timeouts.settle, else settle_timeout
        self.explain_limit = explain_limit

    def _emit(self, event: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(event)

    # -- the run ---------------------------------------------------------------------------------------
    def run(self, scenario: Scenario) -> RunResult:
        t0 = time.monotonic()
        self._settle_limit = scenario.settle_timeout or self.settle_timeout
        total = len(scenario.steps)
        result = RunResult(scenario=scenario.name, file=scenario.file, description=scenario.description,
                           cluster=scenario.cluster.to_dict(), started=datetime.now(UTC).isoformat())
        try:
            self._emit(ProgressEvent("build", total, description=f"building cluster {scenario.cluster.name}"))
            result.build = self._build(scenario)
            if not result.build.ok:
                result.aborted = f"build {result.build.status}: " + (
                    result.build.error or "; ".join(f.message for f in result.build.failures))
            for step in scenario.steps:
                if result.aborted:
                    result.steps.append(StepResult(step.index, step.type, step.describe(), step.raw, step.path,
                                                   status=SKIPPED, error=result.aborted))
                    continue
                self._emit(ProgressEvent("step-start", total, step.index, step.describe()))
                sr = self._run_step(step)
                result.steps.append(sr)
                self._emit(ProgressEvent("step-end", total, step.index, step.describe(), result=sr))
                if sr.status == ERROR and _is_mutating(step):
                    result.aborted = f"{step.path} ({step.type}) errored: {sr.error}"
                elif sr.status == FAIL and self.fail_fast:
                    result.aborted = f"{step.path} ({step.type}) failed and fail-fast is on"
        finally:
            if not self.keep:
                self._emit(ProgressEvent("teardown", total, description="tearing down"))
                result.teardown = self._timed(StepResult(-2, "teardown", "tear down the cluster"),
                                              lambda obs, fails: self._down())
            result.duration_s = time.monotonic() - t0
            self._emit(ProgressEvent("done", total, run=result))
        return result

    def _build(self, scenario: Scenario) -> StepResult:
        def build(obs: dict[str, Any], fails: list[Failure]) -> None:
            self.cluster = self.clusters.up(scenario.cluster)
            obs["cluster"] = scenario.cluster.name
            if scenario.manifests:
                self.c.apply(_dicts(scenario.manifests), wait=False)
                obs["objects"] = [object_ref(o) for o in scenario.manifests]
            limit = scenario.build_timeout or self.build_timeout
            if not self._converged(limit):
                raise _StepError(f"the cluster did not converge within {limit:g}s")

        return self._timed(StepResult(-1, "build", f"build cluster {scenario.cluster.name}"), build)

    @property
    def c(self) -> ScenarioCluster:
        if self.cluster is None:
            raise RuntimeError("the cluster is not up")
        return self.cluster

    def _down(self) -> None:
        """Remove the cluster. A failed `up` removed what it had made itself (netsim.Cluster.up), so
        there is nothing to do without a cluster."""
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.down()

    def _converged(self, timeout: float) -> bool:
        try:
            self.c.wait_converged(timeout)
            return True
        except NetsimError:  # the daemon's DaemonError: not converged in time, or not running
            return False

    def _probe(self, sources: list[str], targets: list[str], ports: list[int], protocols: list[str], via: str,
               count: int, timeout: float) -> list[dict[str, Any]]:
        """Every source to every target, as result dicts; a target `IP:PORT` carries its own port."""
        out: list[dict[str, Any]] = []
        for s in sources:
            for t in targets:
                own_port = sel.parse_target(t).kind == sel.IP_PORT
                results = self.c.probe(s, t, None if own_port else (list(ports) or None), list(protocols) or None,
                                       via=via, count=count, timeout=timeout)
                out += [r.to_json() for r in results]
        return out

    def _timed(self, sr: StepResult, fn: Callable[[dict[str, Any], list[Failure]], None]) -> StepResult:
        t = time.monotonic()
        try:
            fn(sr.observed, sr.failures)
            sr.status = FAIL if sr.failures else PASS
        except Exception as e:  # the API's errors are data for the report, not crashes of the runner
            sr.status = ERROR
            sr.error = str(e) if isinstance(e, _StepError) else f"{type(e).__name__}: {e}"
        sr.duration_ms = round((time.monotonic() - t) * 1000, 3)
        return sr

    def _run_step(self, step: Step) -> StepResult:
        handler = getattr(self, f"_step_{step.type}")
        sr = StepResult(step.index, step.type, step.describe(), step.raw, step.path)

        def body(obs: dict[str, Any], fails: list[Failure]) -> None:
            handler(step.params, obs, fails)
            settles = self.settle and step.type in MUTATING_STEPS and step.type != "wait"
            if settles and not self._converged(self._settle_limit):
                fails.append(Failure(f"the cluster did not converge within {self._settle_limit:g}s "
                                     f"after the {step.type}", expected="converged", observed="timeout"))

        return self._timed(sr, body)

    # -- mutating steps --------------------------------------------------------------------------------
    def _step_apply(self, p: ApplyStep, obs: dict, fails: list[Failure]) -> None:
        obs["objects"] = [object_ref(o) for o in p.objects]
        self.c.apply(_dicts(p.objects), wait=False)

    def _step_delete(self, p: DeleteStep, obs: dict, fails: list[Failure]) -> None:
        obs["objects"] = [r.text for r in p.refs]
        for r in p.refs:
            self.c.delete(r.kind, r.name, r.namespace, wait=False)

    def _step_scale(self, p: ScaleStep, obs: dict, fails: list[Failure]) -> None:
        self.c.scale(p.kind, p.name, p.replicas, p.namespace, wait=False)
        obs["replicas"] = p.replicas

    def _step_rollout(self, p: RolloutStep, obs: dict, fails: list[Failure]) -> None:
        status = self.c.rollout(p.action, p.name, p.namespace, image=p.image, container=p.container, env=p.env,
                                to_revision=p.to_revision, timeout=p.timeout)
        obs["rollout"] = status
        if p.action == "status" and not (status or {}).get("complete", False):
            fails.append(Failure(f"rollout of {p.kind} {p.namespace}/{p.name} did not complete within "
                                 f"{p.timeout:g}s", expected="complete", observed=status))

    def _step_kill(self, p: KillStep, obs: dict, fails: list[Failure]) -> None:
        killed = self.c.kill_pods(p.namespace, name=p.name, selector=p.selector)
        obs["killed"] = list(killed)
        if not killed:
            what = f"{p.namespace}/{p.name}" if p.name else \
                f"pods in {p.namespace} matching {p.selector.describe() if p.selector else '<all>'}"
            raise _StepError(f"no pod to kill: {what}")

    def _step_node(self, p: NodeStep, obs: dict, fails: list[Failure]) -> None:
        (self.c.node_fail if p.action == "fail" else self.c.node_restore)(p.name)
        obs["node"] = p.name

    def _step_wait(self, p: WaitStep, obs: dict, fails: list[Failure]) -> None:
        t = time.monotonic()
        if p.mode == "duration":
            time.sleep(p.duration or 0)
            ok = True
        elif p.mode == "converged":
            ok = self._converged(p.timeout)
        else:
            cond = dict(p.condition or {})
            ok = self.c.wait_for(cond["kind"], cond["name"], cond.get("namespace"), cond.get("condition", "Ready"),
                                 p.timeout)
        obs["waitedMs"] = round((time.monotonic() - t) * 1000, 3)
        if not ok:
            what = "convergence" if p.mode == "converged" else str(p.condition)
            fails.append(Failure(f"timed out after {p.timeout:g}s waiting for {what}", expected=what,
                                 observed="timeout"))

    # -- checks ----------------------------------------------------------------------------------------
    def _explain(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The policy model's reason for each distinct blocked (from, to, port, protocol), capped."""
        out, seen = [], set()
        for r in results:
            if r.get("connected"):
                continue
            key = (r.get("from"), r.get("to"), r.get("port"), r.get("protocol"))
            if key in seen or len(out) >= self.explain_limit:
                continue
            seen.add(key)
            try:
                reason = self.c.explain(*key, probe=False)
            except Exception as e:  # an explanation is a courtesy; its absence must not fail a step
                reason = f"(explain failed: {type(e).__name__}: {e})"
            out.append({"from": key[0], "to": key[1], "port": key[2], "protocol": key[3], "reason": reason})
        return out

    def _step_probe(self, p: ProbeStep, obs: dict, fails: list[Failure]) -> None:
        ports = [p.port] if p.port is not None else []
        results = self._probe([p.source.text], [p.target.text], ports, [p.protocol], p.via, p.count, p.timeout)
        obs["results"] = results
        if not results:
            fails.append(Failure(f"no probe was made: {p.source} -> {p.target} matched nothing",
                                 expected=p.expect, observed="no results"))
            return
        want = p.expect == "allow"
        wrong = [r for r in results if bool(r.get("connected")) != want]
        obs["connected"] = sum(1 for r in results if r.get("connected"))
        obs["attempts"] = len(results)
        blocked = [r for r in results if not r.get("connected")]
        if blocked:
            obs["explanations"] = self._explain(blocked)
        if wrong:
            first = wrong[0]
            how = "did not connect" if want else "connected"
            detail = f"outcome {first.get('outcome', '?')}" if want else f"served by {first.get('servedBy')}"
            fails.append(Failure(
                f"expected {p.expect}: {len(wrong)} of {len(results)} attempt(s) {how} "
                f"(first: {first.get('from')} -> {_target_text(first)}/{first.get('protocol')}, "
                f"{detail})", expected=p.expect,
                observed=[_brief(r) for r in wrong[: self.explain_limit]]))
        connected = [r for r in results if r.get("connected")]
        if p.expect_served_by:
            off = [r for r in connected if not any(s.matches(str(r.get("servedBy"))) for s in p.expect_served_by)]
            if off:
                fails.append(Failure(f"{len(off)} answer(s) came from outside "
                                     f"{', '.join(s.text for s in p.expect_served_by)}: "
                                     f"{sorted({str(r.get('servedBy')) for r in off})}",
                                     expected=[s.text for s in p.expect_served_by],
                                     observed=sorted({str(r.get("servedBy")) for r in off})))
        if p.expect_client_ip is not None:
            off_ip = sorted({str(r.get("clientIP")) for r in connected
                             if not _ip_in(r.get("clientIP"), p.expect_client_ip)})
            if off_ip:
                fails.append(Failure(f"the server saw client IP(s) {off_ip}, expected {p.expect_client_ip}",
                                     expected=str(p.expect_client_ip), observed=off_ip))

    def _step_reachability(self, p: ReachabilityStep, obs: dict, fails: list[Failure]) -> None:
        sources, targets = [s.text for s in p.sources], [t.text for t in p.targets]
        results = self._probe(sources, targets, list(p.ports), list(p.protocols), p.via, p.count, p.timeout)
        obs["results"] = results
        cells: dict[tuple, list[bool]] = defaultdict(list)
        for r in results:
            cells[(r.get("from"), r.get("to"), r.get("port"), r.get("protocol"))].append(bool(r.get("connected")))
        mismatches, uncovered = [], []
        for key, attempts in cells.items():
            mark = "." if all(attempts) else "X" if not any(attempts) else "~"
            exp = p.expectation.expected(str(key[0]), str(key[1]), int(key[2] or 0), str(key[3]))
            if exp is None:
                uncovered.append(key)
            elif exp != ANY and (mark == "~" or (mark == ".") != exp):
                mismatches.append((key, exp, mark))
        missing = _missing_cells(p, cells)
        obs["matrix"], obs["expectedMatrix"] = _matrices(p, cells)
        obs["cells"] = len(cells)
        obs["mismatches"] = []
        if mismatches:
            model = self._model_verdicts(p)
            reasons = {(e["from"], e["to"], e["port"], e["protocol"]): e["reason"]
                       for e in self._explain([{"from": k[0], "to": k[1], "port": k[2], "protocol": k[3]}
                                               for k, _, _ in mismatches])}
            for key, exp, mark in mismatches:
                entry = {"from": key[0], "to": key[1], "port": key[2], "protocol": key[3],
                         "expected": "allow" if exp else "deny",
                         "observed": {".": "allow", "X": "deny"}.get(mark, "mixed")}
                if key in model:
                    entry["model"] = "allow" if model[key] else "deny"
                if key in reasons:
                    entry["explain"] = reasons[key]
                obs["mismatches"].append(entry)
            listed = "; ".join(f"{m['from']} -> {m['to']}:{m['port']}/{m['protocol']} expected {m['expected']} "
                               f"observed {m['observed']}" for m in obs["mismatches"][:5])
            more = f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else ""
            fails.append(Failure(f"{len(mismatches)} of {len(cells)} cell(s) differ: {listed}{more}",
                                 expected=obs.get("expectedMatrix"), observed=obs["matrix"]))
        if uncovered:
            fails.append(Failure(f"{len(uncovered)} probed pair(s) are not in the expected matrix: "
                                 + ", ".join(f"{k[0]} -> {k[1]}" for k in uncovered[:5]),
                                 expected="a row and column for every probed pair",
                                 observed=[list(k) for k in uncovered]))
        if missing:
            fails.append(Failure(f"{len(missing)} expected cell(s) were never probed (missing pods?): "
                                 + ", ".join(f"{k[0]} -> {k[1]}:{k[2]}/{k[3]}" for k in missing[:5]),
                                 expected="a probe result", observed=[list(k) for k in missing]))
        if not results:
            fails.append(Failure("no probe was made: the selectors matched nothing", expected="results",
                                 observed="no results"))

    def _model_verdicts(self, p: ReachabilityStep) -> dict[tuple, bool]:
        try:
            verdicts = self.c.expected_verdicts([s.text for s in p.sources], [t.text for t in p.targets],
                                                  list(p.ports), list(p.protocols))
        except Exception:  # the model's view is extra information for a mismatch, never a reason to error
            return {}
        return {(v.get("from"), v.get("to"), v.get("port"), v.get("protocol")): bool(v.get("allowed"))
                for v in verdicts}

    def _step_trace(self, p: TraceStep, obs: dict, fails: list[Failure]) -> None:
        res = self.c.trace_summary(p.source.text, p.target.text, p.port, p.protocol)
        obs["trace"] = res
        if p.verdict is not None and res.get("verdict") != p.verdict:
            fails.append(Failure(f"verdict {res.get('verdict')!r}, expected {p.verdict!r}"
                                 + (f" (dropped by {res.get('policy')})" if res.get("policy") else ""),
                                 expected=p.verdict, observed=res.get("verdict")))
        if p.policy is not None:
            policies = [res.get("policy"), *(res.get("policies") or [])]
            if p.policy not in policies:
                fails.append(Failure(f"expected policy {p.policy}, the trace names "
                                     f"{[x for x in policies if x] or 'none'}", expected=p.policy,
                                     observed=[x for x in policies if x]))
        hops = [_hop_text(h) for h in res.get("hops") or []]
        if p.hops:
            pos = 0
            for want in p.hops:
                while pos < len(hops) and want not in hops[pos]:
                    pos += 1
                if pos == len(hops):
                    fails.append(Failure(f"hop {want!r} not found in order in the trace", expected=list(p.hops),
                                         observed=hops))
                    break
                pos += 1
        for want in p.contains:
            if not any(want in h for h in hops):
                fails.append(Failure(f"no hop mentions {want!r}", expected=want, observed=hops))
        if p.agree is not None and bool(res.get("agree")) != p.agree:
            fails.append(Failure("simulated and observed paths " + ("disagree" if p.agree else "agree"),
                                 expected={"agree": p.agree}, observed={"agree": res.get("agree"),
                                                                        "disagreements": res.get("disagreements")}))

    def _step_spread(self, p: SpreadStep, obs: dict, fails: list[Failure]) -> None:
        ports = [p.port] if p.port is not None else []
        results = self._probe([p.source.text], [p.target.text], ports, [p.protocol], "service", p.count,
                              p.timeout)
        obs["results"] = results
        # A connection that answered without saying who it was (not a netsim workload) is not an endpoint.
        counts = Counter(str(r["servedBy"]) for r in results if r.get("connected") and r.get("servedBy"))
        failed = sum(1 for r in results if not r.get("connected"))
        obs["counts"] = dict(sorted(counts.items()))
        obs["requests"] = len(results)
        obs["failed"] = failed
        if not results:
            raise _StepError(f"no requests were made from {p.source} to {p.target}")
        if failed:
            fails.append(Failure(f"{failed} of {len(results)} request(s) got no answer", expected=0,
                                 observed=failed))
        if p.endpoints is not None and len(counts) != p.endpoints:
            fails.append(Failure(f"{len(counts)} endpoint(s) answered, expected {p.endpoints}: "
                                 f"{obs['counts']}", expected=p.endpoints, observed=len(counts)))
        if p.uniform:
            cells = list(counts.values()) + [0] * max(0, (p.endpoints or 0) - len(counts))
            if len(cells) < 2 or sum(cells) == 0:
                fails.append(Failure(f"uniform spread needs at least two endpoints, {len(counts)} answered",
                                     expected="uniform", observed=obs["counts"]))
                return
            test = chi_square_uniform(cells)
            obs["chiSquare"] = test.to_dict()
            if test.p_value < p.p_value:
                fails.append(Failure(f"spread is not uniform: chi-square {test.statistic:.2f} with {test.dof} "
                                     f"dof, p={test.p_value:.3g} < {p.p_value:g}; counts {obs['counts']}",
                                     expected={"uniform": True, "pValueAtLeast": p.p_value},
                                     observed=test.to_dict()))

    def _step_dns(self, p: DnsStep, obs: dict, fails: list[Failure]) -> None:
        res = self.c.dns_lookup(p.source.text, p.name, p.qtype, p.server, p.timeout)
        obs["dns"] = res
        if p.rcode is not None and res.get("rcode") != p.rcode:
            fails.append(Failure(f"rcode {res.get('rcode')}, expected {p.rcode}", expected=p.rcode,
                                 observed=res.get("rcode")))
        if p.addresses is not None:
            got = sorted(str(a) for a in res.get("addresses") or [])
            want = sorted(p.addresses)
            if got != want:
                fails.append(Failure(f"{p.name} {p.qtype} resolved to {got}, expected {want}", expected=want,
                                     observed=got))

    def _step_exec(self, p: ExecStep, obs: dict, fails: list[Failure]) -> None:
        done = self.c.exec(p.where.text, list(p.command), timeout=p.timeout)
        code, out, err = done.returncode, done.stdout or "", done.stderr or ""
        obs.update({"exitCode": code, "stdout": out[:_MAX_TEXT], "stderr": err[:_MAX_TEXT]})
        if p.exit_code is not None and code != p.exit_code:
            fails.append(Failure(f"exit code {code}, expected {p.exit_code}" + (f": {err.strip()[:200]}"
                                                                                 if err.strip() else ""),
                                 expected=p.exit_code, observed=code))
        for want in p.stdout_contains:
            if want not in out:
                fails.append(Failure(f"stdout does not contain {want!r}", expected=want, observed=out[:500]))
        for want in p.stderr_contains:
            if want not in err:
                fails.append(Failure(f"stderr does not contain {want!r}", expected=want, observed=err[:500]))

    def _step_repeat(self, p: RepeatStep, obs: dict, fails: list[Failure]) -> None:
        stop = threading.Event()
        during: list[StepResult] = []

        def run_during() -> None:
            try:
                during.append(self._run_step(p.during))
            finally:
                stop.set()

        thread = None
        if p.during is not None:
            thread = threading.Thread(target=run_during, name="netsim-scenario-during", daemon=True)
            thread.start()
        t0 = time.monotonic()
        deadline = t0 + p.duration if p.duration is not None else None
        iterations, failed, details = 0, 0, []
        try:
            while True:
                start = time.monotonic()
                sr = self._run_step(p.step)
                iterations += 1
                if not sr.ok:
                    failed += 1
                    if len(details) < _MAX_REPEAT_DETAILS:
                        details.append({"iteration": iterations, "offsetMs": round((start - t0) * 1000, 3),
                                        "status": sr.status, "error": sr.error,
                                        "failures": [f.to_dict() for f in sr.failures],
                                        "observed": sr.observed})
                if deadline is not None and time.monotonic() + p.every > deadline:
                    break
                if deadline is None and stop.is_set():
                    break
                pause = max(0.0, start + p.every - time.monotonic())
                if deadline is None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
        finally:
            if thread is not None:
                thread.join()
        obs.update({"iterations": iterations, "failed": failed, "passed": iterations - failed,
                    "spanMs": round((time.monotonic() - t0) * 1000, 3), "failedIterations": details})
        if during:
            d = during[0]
            obs["during"] = {"type": d.type, "description": d.description, "status": d.status,
                             "durationMs": d.duration_ms, "observed": d.observed, "error": d.error,
                             "failures": [f.to_dict() for f in d.failures]}
            if d.status == ERROR:
                raise _StepError(f"the step run during the repeat errored: {d.error}")
            if d.status == FAIL:
                fails.append(Failure(f"the step run during the repeat failed: "
                                     f"{'; '.join(f.message for f in d.failures)}", expected="pass",
                                     observed=d.status))
        if failed > p.max_failures:
            first = details[0] if details else {}
            msg = (first.get("error") or "; ".join(f["message"] for f in first.get("failures", []))) or "?"
            fails.append(Failure(f"{failed} of {iterations} iteration(s) failed (at most {p.max_failures} "
                                 f"allowed); first at +{first.get('offsetMs', 0):.0f}ms: {msg}",
                                 expected={"maxFailures": p.max_failures}, observed={"failed": failed,
                                                                                    "iterations": iterations}))


    def _step_load(self, p: LoadStep, obs: dict, fails: list[Failure]) -> None:
        """The load runs on a thread while `during` (if any) runs here, `after` seconds into it."""
        box: dict[str, Any] = {}

        def go() -> None:
            try:
                box["report"] = self.c.load(p.source.text, p.target.text, port=p.port, protocol=p.protocol,
                                            rate=p.rate, duration=p.duration, connections=p.connections,
                                            timeout=p.timeout)
            except Exception as exc:  # reported below, on the runner's thread
                box["error"] = exc
        thread = threading.Thread(target=go, name="netsim-scenario-load", daemon=True)
        thread.start()
        during = None
        if p.during is not None:
            time.sleep(p.after)
            during = self._run_step(p.during)
        thread.join()
        if "error" in box:
            raise _StepError(f"load failed: {box['error']}")
        rep = box["report"]
        obs.update({k: rep[k] for k in ("sent", "ok", "refused", "timeout", "reset", "error", "rate",
                                         "latencyMs", "byEndpoint", "events")})
        obs["series"] = [{k: v for k, v in r.items() if v or k == "second"} for r in rep["series"]]
        if during is not None:
            obs["during"] = {"type": during.type, "description": during.description, "status": during.status,
                             "durationMs": during.duration_ms, "error": during.error,
                             "failures": [f.to_dict() for f in during.failures]}
            if during.status == ERROR:
                raise _StepError(f"the step run during the load errored: {during.error}")
            if during.status == FAIL:
                fails.append(Failure(f"the step run during the load failed: "
                                     f"{'; '.join(f.message for f in during.failures)}", expected="pass",
                                     observed=during.status))
        numbers = {"ok": rep["ok"], "failed": rep["sent"] - rep["ok"], "refused": rep["refused"],
                   "timeout": rep["timeout"], "reset": rep["reset"], "p50": rep["latencyMs"]["p50"], "p99": rep["latencyMs"]["p99"],
                   "max": rep["latencyMs"]["max"],
                   "endpoints": len(rep["byEndpoint"])}
        for key, bound in p.expect:
            what, side = LOAD_EXPECT[key]
            seen = numbers[what]
            if seen is None:  # no request succeeded: there is no latency to bound
                fails.append(Failure(f"{key}: no request succeeded, so there is no {what}", expected=bound,
                                     observed=None))
            elif (side == "max" and seen > bound) or (side == "min" and seen < bound):
                fails.append(Failure(f"{what} {seen:g} is {'above' if side == 'max' else 'below'} {key} "
                                     f"{bound:g} ({rep['sent']} sent, {rep['ok']} ok, {rep['refused']} refused, "
                                     f"{rep['timeout']} timeout, {rep['reset']} reset)", expected={key: bound},
                                     observed=seen))


def run_scenario(scenario: Scenario, clusters: ClusterFactory, **options: Any) -> RunResult:
    """Convenience: `Runner(clusters, **options).run(scenario)`."""
    return Runner(clusters, **options).run(scenario)


# ------------------------------------------------------------------------------------------------ helpers


def _is_mutating(step: Step) -> bool:
    if step.type in MUTATING_STEPS:
        return True
    return step.type in ("repeat", "load") and step.params.during is not None and \
        step.params.during.type in MUTATING_STEPS


def _ip_in(value: Any, net: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.ip_address(str(value)) in net
    except ValueError:
        return False


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("from", "to", "target", "port", "protocol", "connected", "outcome", "servedBy", "clientIP")
    return {k: r.get(k) for k in keys}


def _hop_text(hop: Any) -> str:
    if isinstance(hop, str):
        return hop
    if isinstance(hop, dict):
        if "description" in hop:
            return str(hop["description"])
        return " ".join(f"{k}={v}" for k, v in hop.items())
    return str(hop)


def _missing_cells(p: ReachabilityStep, cells: dict[tuple, list[bool]]) -> list[tuple]:
    """Concrete rows x columns of a matrix that no probe result covers (a pod that was never there)."""
    exp = p.expectation
    if not isinstance(exp, MatrixExpectation):
        return []
    missing = []
    for r in exp.rows:
        if r.is_wildcard:
            continue
        for c in exp.cols:
            if c.is_wildcard or c.kind == sel.IP_PORT:
                continue
            for port in p.ports:
                for proto in p.protocols:
                    if not cells.get((r.text, c.text, port, proto)):
                        missing.append((r.text, c.text, port, proto))
    return missing


def _target_text(result: dict) -> str:
    """`to:port`, without repeating the port of an IP:PORT target."""
    to, port = str(result.get("to")), result.get("port")
    return to if to.endswith(f":{port}") else f"{to}:{port}"


def render_matrix(rows: list[str], cols: list[str], mark: Callable[[str, str], str]) -> str:
    """A truth table in the layout the scenario format reads back (`-` corner, `.`/`X` marks)."""
    width = max([len(c) for c in cols] + [1])
    head_w = max([len(r) for r in rows] + [1])
    lines = ["-".ljust(head_w) + "  " + "  ".join(c.ljust(width) for c in cols)]
    for r in rows:
        lines.append(r.ljust(head_w) + "  " + "  ".join(mark(r, c).ljust(width) for c in cols))
    return "\n".join(line.rstrip() for line in lines)


def _matrices(p: ReachabilityStep, cells: dict[tuple, list[bool]]) -> tuple[dict[str, str], dict[str, str]]:
    """Observed and expected tables per `PROTOCOL/PORT` over the pairs probed.

    Observed: `.` connected, `X` not, `~` mixed over repeated attempts, `?` not probed.
    Expected: `.` allow, `X` deny, `?` either or not covered.
    """
    observed, expected = {}, {}
    for proto, port in sorted({(str(k[3]), k[2]) for k in cells}, key=lambda x: (x[0], x[1] or 0)):
        keys = [k for k in cells if k[2] == port and k[3] == proto]
        rows = sorted({str(k[0]) for k in keys})
        cols = sorted({str(k[1]) for k in keys})

        def seen(r: str, c: str, port: Any = port, proto: str = proto) -> str:
            attempts = cells.get((r, c, port, proto))
            if not attempts:
                return "?"
            return "." if all(attempts) else "X" if not any(attempts) else "~"

        def want(r: str, c: str, port: Any = port, proto: str = proto) -> str:
            exp = p.expectation.expected(r, c, int(port or 0), proto)
            return "?" if exp is None or exp == ANY else "." if exp else "X"

        observed[f"{proto}/{port}"] = render_matrix(rows, cols, seen)
        expected[f"{proto}/{port}"] = render_matrix(rows, cols, want)
    return observed, expected


def _dicts(objects: Any) -> list[Any]:
    """Typed model objects as the manifest dicts `Cluster.apply` takes."""
    return [x.to_dict() if hasattr(x, "to_dict") else x for x in objects]
