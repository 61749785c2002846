"""serving.knative.dev/v1 Service: accepted by the loader (stored as KnativeService), defaulted and validated as
Knative's webhook does, errors naming file, object and field; the config-autoscaler ConfigMap's defaults."""

from __future__ import annotations

import pytest

from netsim.model.errors import SpecError, SpecErrors
from netsim.model.knative import AutoscalerConfig, parse_autoscaler_config
from netsim.model.loader import parse_documents
from netsim.model.registry import kind_alias


def ksvc(annotations: str = "", container: str = "      - image: hello\n", extra: str = "") -> str:
    ann = f"    metadata:\n      annotations:\n{annotations}" if annotations else ""
    return f"""apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: hello}}
spec:
{extra}  template:
{ann}    spec:
      containers:
{container}"""


def test_a_knative_service_is_stored_as_its_own_kind_with_knative_defaults():
    (obj,) = parse_documents(ksvc())
    d = obj.to_dict()
    assert (d["kind"], d["apiVersion"], d["metadata"]["namespace"]) == ("KnativeService", "serving.knative.dev/v1",
                                                                        "default")
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["name"] == "user-container" and c["ports"] == [{"name": "http1", "containerPort": 8080,
                                                             "protocol": "TCP"}]
    assert d["spec"]["template"]["spec"]["timeoutSeconds"] == 300
    assert obj.scaling.min_scale == 0 and obj.scaling.initial_scale == 1 and obj.scaling.target is None
    assert kind_alias("ksvc") == kind_alias("services.serving.knative.dev") == "KnativeService"
    assert kind_alias("svc") == "Service"


def test_the_autoscaling_annotations_are_read():
    (obj,) = parse_documents(ksvc('        autoscaling.knative.dev/target: "10"\n'
                                  '        autoscaling.knative.dev/min-scale: "1"\n'
                                  '        autoscaling.knative.dev/maxScale: "5"\n'
                                  '        autoscaling.knative.dev/window: "6s"\n'
                                  '        autoscaling.knative.dev/metric: rps\n'))
    s = obj.scaling
    assert (s.target, s.min_scale, s.max_scale, s.window, s.metric) == (10.0, 1, 5, 6.0, "rps")


@pytest.mark.parametrize("annotations, field, text", [
    ('        autoscaling.knative.dev/window: "5s"\n', "autoscaling.knative.dev/window", "6s <= 5s"),
    ('        autoscaling.knative.dev/window: "6500ms"\n', "autoscaling.knative.dev/window", "second precision"),
    ('        autoscaling.knative.dev/target: "0.001"\n', "autoscaling.knative.dev/target", "at least 0.01"),
    ('        autoscaling.knative.dev/min-scale: "3"\n        autoscaling.knative.dev/max-scale: "2"\n',
     "autoscaling.knative.dev/max-scale", "less than min-scale=3"),
    ('        autoscaling.knative.dev/min-scale: "-1"\n', "autoscaling.knative.dev/min-scale", "0 <="),
    ('        autoscaling.knative.dev/metric: cpu\n', "autoscaling.knative.dev/metric", "invalid value"),
    ('        autoscaling.knative.dev/initial-scale: "0"\n', "autoscaling.knative.dev/initial-scale", "not allowed"),
])
def test_bad_annotations_are_refused_naming_the_field(annotations, field, text):
    with pytest.raises((SpecError, SpecErrors)) as e:
        parse_documents(ksvc(annotations), "ksvc.yaml")
    msg = str(e.value)
    assert "ksvc.yaml" in msg and "Service default/hello" in msg and field in msg and text in msg


@pytest.mark.parametrize("container, extra, field", [
    ("      - image: a\n      - image: b\n", "", "spec.template.spec.containers"),
    ("      - image: a\n        ports: [{containerPort: 1}, {containerPort: 2}]\n", "",
     "spec.template.spec.containers[0].ports"),
    ("      - name: x\n", "", "spec.template.spec.containers[0].image"),
    ("      - image: a\n", "  traffic: [{revisionName: x, percent: 100}]\n", "spec.traffic[0]"),
])
def test_bad_specs_are_refused_naming_the_field(container, extra, field):
    with pytest.raises((SpecError, SpecErrors)) as e:
        parse_documents(ksvc(container=container, extra=extra), "ksvc.yaml")
    assert field in str(e.value)


def test_config_autoscaler_defaults_and_validation():
    cfg = parse_autoscaler_config(None)
    assert cfg == AutoscalerConfig()
    assert (cfg.stable_window, cfg.scale_to_zero_grace_period, cfg.container_concurrency_target_default,
            cfg.container_concurrency_target_fraction, cfg.max_scale_down_rate) == (60.0, 30.0, 100.0, 0.7, 2.0)
    cfg = parse_autoscaler_config({"scale-to-zero-grace-period": "2s", "container-concurrency-target-percentage": "50",
                                   "enable-scale-to-zero": "false"})
    assert (cfg.scale_to_zero_grace_period, cfg.container_concurrency_target_fraction,
            cfg.enable_scale_to_zero) == (2.0, 0.5, False)
    for bad in ({"stable-window": "5s"}, {"scale-to-zero-grace-period": "0s"}, {"max-scale-down-rate": "1"},
                {"enable-scale-to-zero": "maybe"}):
        with pytest.raises(ValueError):
            parse_autoscaler_config(bad)
