"""kubectl's JSONPath templates (`-o jsonpath=...`, `custom-columns`, `wait --for=jsonpath=...`), pure.

The syntax is client-go's util/jsonpath (documented at kubernetes.io "JSONPath Support"): literal text with
`{...}` actions; inside an action `$`, `.field`, `['field']`, `[n]`, `[a:b]`, `[*]`, `..field` (recursive
descent), `[?(@.x == "y")]` filters (==, !=, <, <=, >, >=, or bare existence), `{range EXPR}...{end}`,
and quoted literals such as `{"\\n"}`. Several results of one action are printed space-separated; strings
print raw, numbers and booleans as JSON, maps and lists as JSON. A path that matches nothing is an error
(`is not found`), as kubectl reports it, except inside `range` and filters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netsim.model.errors import UsageError


class JSONPathError(UsageError):
    """A template that cannot be parsed or a path that finds nothing."""


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Path:
    steps: tuple[tuple, ...]
    source: str


@dataclass(frozen=True)
class _Range:
    path: _Path
    body: tuple


_LITERAL = re.compile(r'^"((?:[^"\\]|\\.)*)"$|^\'((?:[^\'\\]|\\.)*)\'$')


def _unescape(s: str) -> str:
    return s.encode("utf-8").decode("unicode_escape")


def _actions(template: str) -> list[tuple[str, str]]:
    """Split a template into ("text", ...) and ("action", ...) parts, honouring quotes inside braces."""
    out: list[tuple[str, str]] = []
    i, text = 0, []
    while i < len(template):
        ch = template[i]
        if ch != "{":
            if ch == "}":
                raise JSONPathError(f"unmatched '}}' at {i} in {template!r}")
            text.append(ch)
            i += 1
            continue
        if text:
            out.append(("text", "".join(text)))
            text = []
        j = _closing(template, i, "{", "}")
        if j < 0:
            raise JSONPathError(f"unclosed action in {template!r}")
        out.append(("action", template[i + 1:j].strip()))
        i = j + 1
    if text:
        out.append(("text", "".join(text)))
    return out


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """The index of the `closing` that matches the `opening` at `start`, skipping quoted text; -1 if none."""
    depth, quote, j = 0, None, start
    while j < len(text):
        c = text[j]
        if quote:
            if c == "\\":
                j += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _split_brackets(expr: str, start: int) -> tuple[str, int]:
    """The content of a `[...]` starting at `start` (which is '['), and the index after it."""
    j = _closing(expr, start, "[", "]")
    if j < 0:
        raise JSONPathError(f"unclosed '[' in {expr!r}")
    return expr[start + 1:j], j + 1


def parse_path(expr: str) -> _Path:
    """Parse one path expression (`.items[*].metadata.name`, `$.spec`, `..name`)."""
    steps: list[tuple] = []
    i = 0
    src = expr
    if expr.startswith("$") or expr.startswith("@"):
        i = 1
    while i < len(expr):
        c = expr[i]
        if expr.startswith("..", i):
            m = re.compile(r"[A-Za-z0-9_\-/*]+").match(expr, i + 2)
            if not m:
                raise JSONPathError(f"a name must follow '..' in {src!r}")
            steps.append(("recurse", m.group(0)))
            i = m.end()
        elif c == ".":
            m = re.compile(r"[A-Za-z0-9_\-/*]*").match(expr, i + 1)
            name = m.group(0) if m else ""
            if name:
                steps.append(("field", name))
            i = (m.end() if m else i + 1)
        elif c == "[":
            inner, i = _split_brackets(expr, i)
            steps.append(_bracket(inner.strip(), src))
        elif c.isspace():
            i += 1
        else:
            raise JSONPathError(f"unexpected {c!r} at {i} in {src!r}")
    return _Path(tuple(steps), src)


_FILTER = re.compile(r"^\?\((.*)\)$", re.S)
_COMPARE = re.compile(r"^(.*?)\s*(==|!=|<=|>=|<|>|=~)\s*(.*)$", re.S)


def _bracket(inner: str, src: str) -> tuple:
    if inner == "*":
        return ("all",)
    f = _FILTER.match(inner)
    if f:
        cond = f.group(1).strip()
        m = _COMPARE.match(cond)
        if m:
            return ("filter", parse_path(m.group(1).strip()), m.group(2), _operand(m.group(3).strip()))
        return ("filter", parse_path(cond), None, None)
    lit = _LITERAL.match(inner)
    if lit:
        return ("field", _unescape(lit.group(1) if lit.group(1) is not None else lit.group(2)))
    if "," in inner:
        return ("union", tuple(_bracket(p.strip(), src) for p in inner.split(",")))
    if ":" in inner:
        parts = inner.split(":")
        try:
            nums = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise JSONPathError(f"bad slice [{inner}] in {src!r}") from None
        return ("slice", *(nums + [None] * (3 - len(nums))))
    try:
        return ("index", int(inner))
    except ValueError:
        return ("field", inner)


def _operand(text: str) -> Any:
    lit = _LITERAL.match(text)
    if lit:
        return _unescape(lit.group(1) if lit.group(1) is not None else lit.group(2))
    if text.startswith(("@", "$", ".")):
        return parse_path(text)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _step(values: list[Any], step: tuple) -> list[Any]:
    out: list[Any] = []
    kind = step[0]
    for v in values:
        if kind == "field":
            name = step[1]
            if name == "*":
                out.extend(v.values() if isinstance(v, Mapping) else v if isinstance(v, list) else [])
            elif isinstance(v, Mapping) and name in v:
                out.append(v[name])
        elif kind == "all":
            out.extend(v.values() if isinstance(v, Mapping) else v if isinstance(v, list) else [])
        elif kind == "index" and isinstance(v, list):
            if -len(v) <= step[1] < len(v):
                out.append(v[step[1]])
        elif kind == "slice" and isinstance(v, list):
            out.extend(v[slice(step[1], step[2], step[3])])
        elif kind == "union":
            for sub in step[1]:
                out.extend(_step([v], sub))
        elif kind == "recurse":
            out.extend(_recurse(v, step[1]))
        elif kind == "filter":
            items = v if isinstance(v, list) else list(v.values()) if isinstance(v, Mapping) else []
            out.extend(x for x in items if _matches(x, step[1], step[2], step[3]))
    return out


def _recurse(v: Any, name: str) -> list[Any]:
    out: list[Any] = []
    if isinstance(v, Mapping):
        if name == "*":
            out.extend(v.values())
        elif name in v:
            out.append(v[name])
        for child in v.values():
            out.extend(_recurse(child, name))
    elif isinstance(v, list):
        for child in v:
            out.extend(_recurse(child, name))
    return out


def _matches(item: Any, lhs: _Path, op: str | None, rhs: Any) -> bool:
    left = evaluate(lhs, item)
    if op is None:
        return bool(left)
    right = evaluate(rhs, item) if isinstance(rhs, _Path) else [rhs]
    if not left or not right:
        return False
    a, b = left[0], right[0]
    try:
        if op in ("==", "="):
            return a == b or str(a) == str(b)
        if op == "!=":
            return not (a == b or str(a) == str(b))
        if op == "=~":
            return re.search(str(b), str(a)) is not None
        if isinstance(a, str) != isinstance(b, str):
            a, b = float(a), float(b)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except (TypeError, ValueError):
        return False


def evaluate(path: _Path, data: Any) -> list[Any]:
    values = [data]
    for step in path.steps:
        values = _step(values, step)
    return values


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _parse_template(template: str) -> tuple:
    stack: list[list] = [[]]
    ranges: list[_Path] = []
    for kind, body in _actions(template):
        if kind == "text":
            stack[-1].append(_Text(body))
            continue
        lit = _LITERAL.match(body)
        if lit:
            stack[-1].append(_Text(_unescape(lit.group(1) if lit.group(1) is not None else lit.group(2))))
        elif body.startswith("range ") or body == "range":
            ranges.append(parse_path(body[5:].strip()))
            stack.append([])
        elif body == "end":
            if not ranges:
                raise JSONPathError(f"'end' without 'range' in {template!r}")
            inner = tuple(stack.pop())
            stack[-1].append(_Range(ranges.pop(), inner))
        else:
            stack[-1].append(parse_path(body))
    if ranges:
        raise JSONPathError(f"'range' without 'end' in {template!r}")
    return tuple(stack[0])


def _run(nodes: tuple, data: Any, strict: bool) -> str:
    out: list[str] = []
    for n in nodes:
        if isinstance(n, _Text):
            out.append(n.text)
        elif isinstance(n, _Range):
            for item in evaluate(n.path, data):
                for sub in (item if isinstance(item, list) else [item]):
                    out.append(_run(n.body, sub, False))
        else:
            found = evaluate(n, data)
            if not found and strict and n.steps:
                raise JSONPathError(f"{n.source} is not found")
            out.append(" ".join(_format(v) for v in found))
    return "".join(out)


def render(template: str, data: Any) -> str:
    """Render a kubectl JSONPath template against `data` (a manifest dict or a List)."""
    return _run(_parse_template(template), data, True)


def relaxed(expr: str) -> str:
    """kubectl's RelaxedJSONPathExpression (custom-columns): `.a.b`, `a.b` or `{.a.b}` as a template."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        return expr
    if not expr.startswith((".", "$", "[")):
        expr = "." + expr
    return "{" + expr + "}"


def values(expr: str, data: Any) -> Sequence[Any]:
    """What one relaxed expression finds in `data` (for custom columns and `wait --for=jsonpath`)."""
    nodes = _parse_template(relaxed(expr))
    found: list[Any] = []
    for n in nodes:
        if isinstance(n, _Path):
            found.extend(evaluate(n, data))
    return found
