"""Probe selector parsing and matching (shared with `netsim probe`)."""

from __future__ import annotations

import pytest

from netsim.model import targets as sel


@pytest.mark.parametrize("text,kind,canonical", [
    ("default/client", sel.POD, "default/client"),
    ("default/*", sel.PODS, "default/*"),
    ("*/*", sel.PODS, "*/*"),
    ("node/node-1", sel.NODE, "node/node-1"),
    ("host/client", sel.HOST, "host/client"),
    (" x/a ", sel.POD, "x/a"),
])
def test_sources(text, kind, canonical):
    s = sel.parse_source(text)
    assert (s.kind, s.text) == (kind, canonical)


@pytest.mark.parametrize("text,kind", [
    ("svc/default/web", sel.SERVICE),
    ("10.96.0.10", sel.IP),
    ("172.18.0.2:30080", sel.IP_PORT),
    ("default/web-1", sel.POD),
])
def test_targets(text, kind):
    assert sel.parse_target(text).kind == kind


@pytest.mark.parametrize("text,message", [
    ("svc/default/web", "cannot be a source"),
    ("10.96.0.1", "cannot be a source"),
    ("*/client", "needs its namespace"),
    ("Default/client", "RFC 1123"),
    ("default/Client", "RFC 1123"),
    ("default", "not a selector"),
    ("a/b/c", "not a selector"),
    ("", "must be a selector string"),
    (42, "must be a selector string"),
    ("node/", "node name"),
])
def test_bad_sources(text, message):
    with pytest.raises(sel.SelectorError, match=message):
        sel.parse_source(text)


@pytest.mark.parametrize("text,message", [
    ("svc/default", "svc/NAMESPACE/NAME"),
    ("svc/default/Web", "RFC 1123"),
    ("10.0.0.1:70000", "between 1 and 65535"),
    ("10.0.0.300", "not a selector"),
])
def test_bad_targets(text, message):
    with pytest.raises(sel.SelectorError, match=message):
        sel.parse_target(text)


def test_parse_pod_needs_one_pod():
    assert sel.parse_pod("x/a").name == "a"
    with pytest.raises(sel.SelectorError, match="one pod"):
        sel.parse_pod("x/*")
    with pytest.raises(sel.SelectorError, match="one pod"):
        sel.parse_pod("node/node-1")


def test_matching():
    assert sel.parse_source("x/*").matches("x/a")
    assert not sel.parse_source("x/*").matches("y/a")
    assert sel.parse_source("*/*").matches("y/a")
    assert not sel.parse_source("*/*").matches("node/node-1")
    assert not sel.parse_source("*/*").matches("svc/x/y")
    assert sel.parse_source("x/a").matches("x/a")
    assert not sel.parse_source("x/a").matches("x/b")
    assert sel.parse_target("svc/x/web").matches("svc/x/web")
    assert sel.parse_source("node/n1").matches("node/n1")


def test_split_port():
    assert sel.split_port("svc/default/web:80") == ("svc/default/web", 80)
    assert sel.split_port("default/web") == ("default/web", None)
    assert sel.split_port("10.96.0.10:53") == ("10.96.0.10", 53)
    with pytest.raises(sel.SelectorError):
        sel.split_port("svc/a/b:0")
