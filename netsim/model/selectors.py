"""Kubernetes label selectors: parsed once, matched many times.

Semantics follow apimachinery's `metav1.LabelSelector` (pkg/apis/meta/v1/helpers.go
LabelSelectorAsSelector): matchLabels and matchExpressions are ANDed; operators In, NotIn, Exists,
DoesNotExist; In/NotIn need a non-empty values list, Exists/DoesNotExist need none. An empty selector
matches everything; a missing (None) selector is the caller's business (NetworkPolicy treats some as
"match nothing" - see netsim.policy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from netsim.model.errors import Source, SpecError

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

# Label keys: optional DNS-subdomain prefix (<=253) + "/" + name (<=63); values <=63, may be empty.
_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
_LABEL_NAME_RE = re.compile(rf"^{_NAME}$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key, or None if it is."""
    if not isinstance(key, str) or not key:
        return "label key must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return f"label key prefix {prefix!r} must be a DNS subdomain"
    if len(name) > 63 or not _LABEL_NAME_RE.match(name):
        return f"label key name {name!r} must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def label_value_problem(value: object) -> str | None:
    """Why `value` is not a valid label value, or None if it is."""
    if not isinstance(value, str):
        return f"label value {value!r} must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME_RE.match(value)):
        return f"label value {value!r} must be empty or at most 63 alphanumerics, '-', '_' or '.'"
    return None


def validate_labels(labels: object, *, source: Source, obj: str, path: str) -> dict[str, str]:
    """Check a labels map and return it as a plain dict."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise SpecError("must be a mapping of label keys to values", source=source, obj=obj, field=path)
    for k, v in labels.items():
        problem = label_key_problem(k) or label_value_problem(v)
        if problem:
            raise SpecError(problem, source=source, obj=obj, field=f"{path}.{k}")
    return dict(labels)


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            # apimachinery: NotIn also matches when the key is absent.
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def describe(self) -> str:
        if self.operator == "In":
            return f"{self.key} in ({','.join(self.values)})"
        if self.operator == "NotIn":
            return f"{self.key} notin ({','.join(self.values)})"
        if self.operator == "Exists":
            return self.key
        return f"!{self.key}"


@dataclass(frozen=True)
class LabelSelector:
    """A parsed metav1.LabelSelector. `LabelSelector()` matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self.match_expressions)

    def describe(self) -> str:
        """kubectl's string form (`app=web,tier in (a,b)`), `<all>` when empty."""
        parts = [f"{k}={v}" for k, v in self.match_labels] + [r.describe() for r in self.match_expressions]
        return ",".join(parts) if parts else "<all>"

    def to_dict(self) -> dict:
        out: dict = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                for r in self.match_expressions
            ]
        return out

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(match_labels=tuple(sorted(labels.items())))


def parse_selector(data: object, *, source: Source, obj: str, path: str) -> LabelSelector:
    """Parse a metav1.LabelSelector mapping, naming `path` in every error."""
    if data is None:
        return LabelSelector()
    if not isinstance(data, Mapping):
        raise SpecError("must be a label selector mapping (matchLabels / matchExpressions)",
                        source=source, obj=obj, field=path)
    unknown = set(data) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SpecError(f"unknown selector field(s): {', '.join(sorted(unknown))}",
                        source=source, obj=obj, field=path)
    labels = validate_labels(data.get("matchLabels"), source=source, obj=obj, path=f"{path}.matchLabels")
    exprs = data.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise SpecError("must be a list", source=source, obj=obj, field=f"{path}.matchExpressions")
    reqs = []
    for i, e in enumerate(exprs):
        p = f"{path}.matchExpressions[{i}]"
        if not isinstance(e, Mapping):
            raise SpecError("must be a mapping with key, operator and values", source=source, obj=obj, field=p)
        key, op, values = e.get("key"), e.get("operator"), e.get("values")
        problem = label_key_problem(key) if key is not None else "key is required"
        if problem:
            raise SpecError(problem, source=source, obj=obj, field=f"{p}.key")
        if op not in OPERATORS:
            raise SpecError(f"operator {op!r} is not one of {', '.join(OPERATORS)}",
                            source=source, obj=obj, field=f"{p}.operator")
        if op in ("In", "NotIn"):
            if not isinstance(values, list) or not values:
                raise SpecError(f"operator {op} needs a non-empty values list",
                                source=source, obj=obj, field=f"{p}.values")
            for v in values:
                problem = label_value_problem(v)
                if problem:
                    raise SpecError(problem, source=source, obj=obj, field=f"{p}.values")
        elif values:
            raise SpecError(f"operator {op} takes no values", source=source, obj=obj, field=f"{p}.values")
        reqs.append(Requirement(key, op, tuple(values or ())))
    return LabelSelector(match_labels=tuple(sorted(labels.items())), match_expressions=tuple(reqs))


_SET_TERM = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([^\s,()]*))?\s*$")


def _split_terms(text: str) -> list[str]:
    """Split at commas that are not inside `( )`."""
    terms, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return terms


def parse_selector_string(text: str) -> LabelSelector:
    """A label selector as kubectl's `-l` takes it (apimachinery labels.Parse): `a=b`, `a==b`, `a!=b`,
    `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas. Raises ValueError with kubectl's meaning."""
    labels: list[tuple[str, str]] = []
    reqs: list[Requirement] = []
    if not text.strip():
        return LabelSelector()
    for term in _split_terms(text):
        m = _SET_TERM.match(term)
        if not m:
            raise ValueError(f"unable to parse requirement: {term.strip()!r}")
        neg, key, setop, setvals, op, value = m.groups()
        problem = label_key_problem(key)
        if problem:
            raise ValueError(f"{key!r}: {problem}")
        if neg and (setop or op):
            raise ValueError(f"unable to parse requirement: {term.strip()!r}")
        if setop:
            vals = tuple(v.strip() for v in setvals.split(",") if v.strip())
            for v in vals:
                if label_value_problem(v):
                    raise ValueError(f"{v!r}: {label_value_problem(v)}")
            reqs.append(Requirement(key, "In" if setop == "in" else "NotIn", vals))
        elif op:
            if label_value_problem(value):
                raise ValueError(f"{value!r}: {label_value_problem(value)}")
            if op == "!=":
                reqs.append(Requirement(key, "NotIn", (value,)))
            else:
                labels.append((key, value))
        else:
            reqs.append(Requirement(key, "DoesNotExist" if neg else "Exists"))
    return LabelSelector(match_labels=tuple(sorted(labels)), match_expressions=tuple(reqs))
