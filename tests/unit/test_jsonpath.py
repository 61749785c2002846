"""kubectl's JSONPath templates: the examples of kubernetes.io "JSONPath Support", and error cases."""

from __future__ import annotations

import pytest

from netsim.cli.jsonpath import JSONPathError, render, values

# The document kubernetes.io's JSONPath page uses for its examples.
DOC = {
    "kind": "List",
    "items": [
        {"kind": "None", "metadata": {"name": "127.0.0.1", "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
         "status": {"capacity": {"cpu": "4"},
                    "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}]}},
        {"kind": "None", "metadata": {"name": "127.0.0.2"},
         "status": {"capacity": {"cpu": "8"},
                    "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.2"},
                                  {"type": "another", "address": "127.0.0.3"}]}},
    ],
    "users": [{"name": "myself", "user": {}}, {"name": "e2e", "user": {"username": "admin", "password": "secret"}}],
}


@pytest.mark.parametrize("template, expected", [
    ("{.kind}", "List"),
    ("{['kind']}", "List"),
    ("{$.kind}", "List"),
    ("{.items[*].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{..name}", "127.0.0.1 127.0.0.2 myself e2e"),
    ("{.items[0].status.capacity.cpu}", "4"),
    ("{.items[-1:].metadata.name}", "127.0.0.2"),
    ("{.items[0:1].metadata.name}", "127.0.0.1"),
    ("{.users[?(@.name==\"e2e\")].user.password}", "secret"),
    ("{.items[?(@.status.capacity.cpu>5)].metadata.name}", "127.0.0.2"),
    ("{.users[?(@.user.username)].name}", "e2e"),
    ("{.items[0].metadata['name', 'labels']}", '127.0.0.1 {"kubernetes.io/hostname":"127.0.0.1"}'),
    ("{.items[0].metadata.labels['kubernetes.io/hostname']}", "127.0.0.1"),
    ("{range .items[*]}[{.metadata.name}, {.status.capacity.cpu}] {end}", "[127.0.0.1, 4] [127.0.0.2, 8] "),
    ('{range .items[*]}{.metadata.name}{"\\t"}{.status.addresses[0].address}{"\\n"}{end}',
     "127.0.0.1\t127.0.0.1\n127.0.0.2\t127.0.0.2\n"),
    ("name: {.items[0].metadata.name}!", "name: 127.0.0.1!"),
    ("{.items[0].status.capacity}", '{"cpu":"4"}'),
])
def test_kubernetes_io_examples(template, expected):
    assert render(template, DOC) == expected


def test_missing_path_is_an_error_as_kubectl_says():
    with pytest.raises(JSONPathError, match="is not found"):
        render("{.nope}", DOC)


@pytest.mark.parametrize("bad", ["{.items[0", "{range .items[*]}{.x}", "{end}", "{.kind", "}"])
def test_malformed_templates_are_usage_errors(bad):
    with pytest.raises(JSONPathError):
        render(bad, DOC)


def test_relaxed_expressions_for_custom_columns():
    assert values(".metadata.name", DOC["items"][0]) == ["127.0.0.1"]
    assert values("metadata.name", DOC["items"][0]) == ["127.0.0.1"]
    assert values("{.status.addresses[*].address}", DOC["items"][1]) == ["127.0.0.2", "127.0.0.3"]
