"""Size limits the API server and etcd put on what they accept, and the checks that apply them.

- Request size: kube-apiserver refuses a request body over `MaxRequestBodyBytes`, 3 MiB by default
  (k8s.io/apiserver pkg/server/config.go NewConfig: "3 * 1024 * 1024", sized as twice etcd's limit), with
  413 "Request entity too large: limit is 3145728". kubectl sends one request per object, so the limit
  is per object (its JSON encoding), not per file.
- Stored object size: etcd refuses a value over `--max-request-bytes`, 1.5 MiB by default (etcd docs,
  dev-guide/limit.md "Request size limit"); the API server relays "etcdserver: request is too large".
  The store checks this on every write (netsim.store), which also covers writes that bypass the loader.
- Annotations: apimachinery ValidateAnnotations (pkg/api/validation/objectmeta.go) checks each key as a
  qualified name and the total size of keys plus values against TotalAnnotationSizeLimitB = 256 KiB.
- YAML aliases: sigs.k8s.io/yaml decodes with go-yaml, whose decoder refuses "excessive aliasing"
  (yaml.v2/v3 decode.go allowedAliasRatio: once more than 100 aliases and 1000 decode operations are
  counted, aliases may make up 99 % of the decoded nodes up to 400 000 of them, falling linearly to 10 %
  at 4 000 000). PyYAML builds an alias as a shared reference, so a 512-byte "billion laughs" costs nothing
  until something serialises it (the store: 80 MB). `check_alias_expansion` counts what the document
  expands to before the object is built, refusing what go-yaml refuses and, sooner, any document whose
  expansion could not fit in one request (3 MiB) anyway.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from netsim.model.selectors import label_key_problem

MAX_REQUEST_BYTES = 3 * 1024 * 1024  # kube-apiserver MaxRequestBodyBytes
MAX_OBJECT_BYTES = 3 * 512 * 1024  # etcd --max-request-bytes default (1.5 MiB)
TOTAL_ANNOTATION_BYTES = 256 * 1024  # apimachinery TotalAnnotationSizeLimitB
# netsim's bound on replicas (upstream only requires >= 0 of an int32): every replica is a network
# namespace with a veth pair on this one host. 50,000 is 2.5 times the largest cluster built here (20,000
# pods, scenarios/large-10k.yaml); a 10,000-replica Deployment, as issue #18 applies, is one object. Beyond
# it a typo (`replicas: 500000`) would only exhaust the host's memory and the store.
MAX_REPLICAS = 50_000


def json_size(obj: Any) -> int:
    """Bytes of the object's JSON encoding (what kubectl sends and what the store keeps)."""
    return len(json.dumps(obj, separators=(",", ":"), default=str).encode())


def request_too_large(size: int) -> str:
    return (f"request entity too large: the object is {size} bytes as JSON, the API server's limit is "
            f"{MAX_REQUEST_BYTES} (3 MiB)")


def object_too_large(size: int) -> str:
    return (f"etcdserver: request is too large: the object is {size} bytes as JSON, etcd's limit is "
            f"{MAX_OBJECT_BYTES} (1.5 MiB)")


def annotations_problem(annotations: dict[str, str]) -> tuple[str | None, str] | None:
    """(offending key or None, why) when annotations break ValidateAnnotations, else None."""
    total = 0  # keys are qualified names: the same rule as label keys
    for k, v in annotations.items():
        problem = label_key_problem(k)
        if problem:
            return k, problem.replace("label key", "annotation key")
        total += len(k) + len(v)
    if total > TOTAL_ANNOTATION_BYTES:
        return None, (f"too long: annotations total {total} bytes, must have at most {TOTAL_ANNOTATION_BYTES} "
                      "bytes (256 KiB)")
    return None


# -- YAML alias expansion ---------------------------------------------------------------------------------

ALIAS_MIN_ALIASES = 100  # go-yaml starts checking after this many aliases ...
ALIAS_MIN_DECODES = 1000  # ... and this many decoded nodes


def allowed_alias_ratio(decodes: int) -> float:
    """go-yaml's allowedAliasRatio: 0.99 up to 400k decoded nodes, falling linearly to 0.10 at 4M."""
    if decodes <= 400_000:
        return 0.99
    if decodes >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decodes - 400_000) / 3_600_000


class AliasBomb(yaml.YAMLError):
    """A document whose aliases expand past what the API server's decoder or request limit allows."""

    def __init__(self, problem: str, mark: Any = None):
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def check_alias_expansion(root: yaml.Node) -> None:
    """Refuse a composed document whose alias expansion is excessive (see the module docstring).

    A YAML composer hands out an alias (`*name`) as the very node its anchor made, so a node met a second
    time is an alias. Counts are memoised per distinct node, so the check costs the size of the text, not
    of the expansion: (decoded nodes, aliases decoded, approximate JSON bytes) of each subtree, where an
    alias costs one decode plus its whole subtree again, as in go-yaml's decoder.
    """
    memo: dict[int, tuple[int, int, int]] = {}

    def count(node: yaml.Node, depth: int) -> tuple[int, int, int]:
        if depth > 10_000:
            raise AliasBomb("document nests deeper than 10000 levels", node.start_mark)
        key = id(node)
        if key in memo:
            d, a, s = memo[key]
            return d + 1, a + 1, s
        memo[key] = (1, 0, 4)  # a cycle through an alias (no JSON has one) counts once
        decodes, aliases, size = 1, 0, 2
        if isinstance(node, yaml.ScalarNode):
            size = len(node.value) + 2
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else [c for kv in node.value for c in kv]
            for child in children:
                d, a, s = count(child, depth + 1)
                decodes, aliases, size = decodes + d, aliases + a, size + s + 1
        memo[key] = (decodes, aliases, size)
        return memo[key]

    decodes, aliases, size = count(root, 0)
    if aliases > ALIAS_MIN_ALIASES and decodes > ALIAS_MIN_DECODES and aliases / decodes > allowed_alias_ratio(decodes):
        raise AliasBomb(f"document contains excessive aliasing ({aliases} aliases in {decodes} decoded nodes, as "
                        "go-yaml refuses)", root.start_mark)
    if aliases and size > MAX_REQUEST_BYTES:
        raise AliasBomb(f"document expands through its aliases to about {size} bytes, over the API server's "
                        f"request limit of {MAX_REQUEST_BYTES} bytes (3 MiB)", root.start_mark)
