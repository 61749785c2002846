"""Read Kubernetes manifests (files, directories, stdin, text) into typed objects, all or nothing.

Every document of the whole input is parsed before anything is returned; if any is bad the loader raises
`SpecErrors` with one error per bad document (plus duplicates), so a caller applies nothing from an input
that is partly wrong and the user sees every problem at once. Each error names the file, the document
(1-based), the object ("Deployment default/web") and the field path.

YAML is read the way kubectl reads it (sigs.k8s.io/yaml): multi-document streams, `null`/empty documents
skipped, `kind: List` (and `<Kind>List`) unpacked, timestamps left as strings. Unlike PyYAML's default a
key repeated in one mapping is an error (kubectl's strict decoding rejects it too) since the later value
silently winning hides mistakes.

Limits as the API server has them (netsim.model.limits): a document whose YAML aliases expand past what
go-yaml's decoder or the 3 MiB request limit allows is refused before its object is built, and an object
whose JSON encoding is over 3 MiB is refused as the API server refuses the request.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from netsim.model.builtin_kinds import builtin, served_api_versions
from netsim.model.errors import Source, SpecError, SpecErrors
from netsim.model.generic import CustomKind, custom_kind, parse_stored
from netsim.model.limits import (
    MAX_REQUEST_BYTES,
    AliasBomb,
    check_alias_expansion,
    json_size,
    request_too_large,
)
from netsim.model.registry import KINDS, kind_info, stored_kind
from netsim.model.registry import namespaced as kind_namespaced

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when there is one
    """SafeLoader that rejects duplicate mapping keys and alias bombs, and keeps timestamps as strings."""

    def construct_document(self, node: yaml.Node) -> Any:
        check_alias_expansion(node)  # before anything is built from it
        return super().construct_document(node)


_StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "mapping keys must be scalars",
                                                    key_node.start_mark) from None
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"mapping key {key!r} appears twice",
                                                    key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error(e: yaml.YAMLError, source: Source) -> SpecError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{problem} ({context})" if context and context != problem else problem
    what = "YAML document refused" if isinstance(e, AliasBomb) else "YAML syntax error"
    return SpecError(f"{what}{where}: {detail}", source=source)


def iter_raw_documents(text: str, file: str) -> Iterator[tuple[Source, Any]]:
    """Yield (source, document) for each YAML document; a syntax error is raised as SpecError (and ends)."""
    index = 0
    try:
        for doc in yaml.load_all(text, Loader=_StrictLoader):  # noqa: S506 - a SafeLoader subclass
            yield Source(file, index), doc
            index += 1
    except yaml.YAMLError as e:
        raise _yaml_error(e, Source(file, index)) from None


def _describe(doc: Mapping) -> str | None:
    kind = doc.get("kind")
    md = doc.get("metadata")
    name = md.get("name") if isinstance(md, Mapping) else None
    if isinstance(kind, str) and isinstance(name, str):
        ns = md.get("namespace")
        return f"{kind} {ns}/{name}" if isinstance(ns, str) else f"{kind} {name}"
    return kind if isinstance(kind, str) else None


def _no_matches(kind: str, api_version: str, source: Source, obj: str | None) -> SpecError:
    """The API server's (and kubectl's) wording for a kind it does not serve under that apiVersion."""
    served = served_api_versions(kind) or (KINDS[kind].api_versions if kind in KINDS else ())
    hint = (f" ({kind} is served as {' or '.join(served)})" if served
            else "; ensure CRDs are installed first")
    return SpecError(f'no matches for kind "{kind}" in version "{api_version}"{hint}', source=source, obj=obj,
                     field="apiVersion" if served else "kind")


def in_namespace(doc: Any, namespace: str, source: Source,
                 custom: Mapping[str, CustomKind] | None = None) -> Any:
    """`doc` as `kubectl apply -n NAMESPACE` sends it: a namespaced object that names no namespace gets
    NAMESPACE, one that names another is refused with kubectl's wording (resource.Builder's
    RequireNamespace: "the namespace from the provided object ... does not match the namespace ...");
    cluster-scoped objects and non-objects are left as they are."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("kind"), str):
        return doc
    if not kind_namespaced(doc["kind"], custom):
        return doc
    md = doc.get("metadata")
    if not isinstance(md, Mapping):
        return doc
    ns = md.get("namespace")
    if ns is None or ns == "":
        return {**doc, "metadata": {**md, "namespace": namespace}}
    if ns != namespace:
        raise SpecError(f'the namespace from the provided object "{ns}" does not match the namespace '
                        f'"{namespace}". You must pass \'--namespace={ns}\' to perform this operation.',
                        source=source, obj=_describe(doc), field="metadata.namespace")
    return doc


def parse_object(doc: Any, source: Source, custom: Mapping[str, CustomKind] | None = None, *,
                 skip_unknown: bool = False, namespace: str | None = None) -> Any:
    """Parse one object document into its typed object; raise SpecError naming what is wrong.

    Emulated kinds get their own parsers; every other built-in kind and every kind a CustomResourceDefinition
    in `custom` defines is a `StoredObject`. Any other kind is refused as the API server refuses it ("no
    matches for kind"), or, with `skip_unknown`, stored unchecked (`StoredObject.verified` False).
    `namespace`: the namespace of `apply -n` (`in_namespace`).
    """
    if not isinstance(doc, Mapping):
        raise SpecError(f"a document must be a mapping (a Kubernetes object), got {type(doc).__name__}",
                        source=source)
    if namespace is not None:
        doc = in_namespace(doc, namespace, source, custom)
    obj = _describe(doc)
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise SpecError("is required (a string such as Pod or Deployment)", source=source, obj=obj, field="kind")
    if not isinstance(api_version, str) or not api_version:
        raise SpecError("is required (a string such as v1 or apps/v1)", source=source, obj=obj,
                        field="apiVersion")
    info = kind_info(stored_kind(api_version, kind))
    if info is not None and api_version in info.api_versions:
        try:
            parser = info.parser
        except ModuleNotFoundError as e:
            if e.name != info.module:
                raise
            raise SpecError(f"kind {kind} is not available in this netsim build", source=source, obj=obj,
                            field="kind") from None
        return parser(doc, source)
    b = builtin(kind)
    if b is not None and api_version in served_api_versions(kind):
        if kind == "Node":
            raise SpecError("nodes are made from the Cluster spec (spec.nodes), not applied", source=source,
                            obj=obj, field="kind")
        if not b.storable:
            raise SpecError(f"{kind} is a request the API server answers, not an object it stores",
                            source=source, obj=obj, field="kind")
        return parse_stored(doc, source, kind=kind, namespaced=b.namespaced)
    ck = (custom or {}).get(kind)
    if ck is not None and api_version in ck.api_versions:
        return parse_stored(doc, source, kind=kind, namespaced=ck.namespaced)
    if skip_unknown and b is None and ck is None and info is None:
        # nobody says the kind's scope; most custom kinds are namespaced, and so is this guess
        return replace(parse_stored(doc, source, kind=kind, namespaced=True), verified=False)
    raise _no_matches(kind, api_version, source, obj)


def _is_list(doc: Any, custom: Mapping[str, CustomKind] | None = None) -> bool:
    if not isinstance(doc, Mapping):
        return False
    kind = doc.get("kind")
    if kind == "List":
        return True
    if not isinstance(kind, str) or not kind.endswith("List"):
        return False
    item = kind[:-4]
    return item in KINDS or builtin(item) is not None or item in (custom or {})


def custom_kinds_in(items: Iterable[tuple[Source, Any]]) -> tuple[dict[str, CustomKind], list[SpecError]]:
    """The kinds defined by CustomResourceDefinitions among raw documents (so that a file may define a kind
    and use it, which `kubectl apply` of a CRD and its objects in one file also allows once established)."""
    out: dict[str, CustomKind] = {}
    errors: list[SpecError] = []
    for source, doc in items:
        if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition" \
                and doc.get("apiVersion") in served_api_versions("CustomResourceDefinition"):
            try:
                ck = custom_kind(doc, source)
            except SpecError:
                continue  # reported when the document itself is parsed
            if builtin(ck.kind) is not None or ck.kind in KINDS:
                errors.append(SpecError(f"netsim keys objects by kind and cannot store a custom kind named "
                                        f"like the built-in {ck.kind}", source=source,
                                        obj=f"CustomResourceDefinition {doc['metadata'].get('name')}",
                                        field="spec.names.kind"))
                continue
            out[ck.kind] = ck
    return out, errors


def _in_list(e: SpecError, index: int) -> SpecError:
    field = f"items[{index}]" + (f".{e.field}" if e.field else "")
    return SpecError(e.message, source=e.source, obj=e.obj, field=field)


def object_key(obj: Any) -> tuple[str, str | None, str]:
    """Identity of an object within a cluster: (kind, namespace, name)."""
    return obj.kind, obj.meta.namespace, obj.meta.name


def object_ref(obj: Any) -> str:
    """`Kind ns/name` (or `Kind name` for cluster-scoped kinds), as errors and events name objects."""
    return f"{obj.kind} {obj.meta.key}"


def parse_sources(items: Iterable[tuple[Source, Any]], custom: Mapping[str, CustomKind] | None = None, *,
                  skip_unknown: bool = False,
                  namespace: str | None = None) -> tuple[list[tuple[Source, Any]], list[SpecError]]:
    """Parse raw (source, document) pairs; return parsed (source, object) pairs and all errors, no raise.

    `custom` holds the kinds stored CRDs define; CRDs among the documents add theirs. `namespace`: the
    namespace for objects that name none (`apply -n`)."""
    items = list(items)
    defined, errors = custom_kinds_in(items)
    custom = {**(custom or {}), **defined}
    parsed: list[tuple[Source, Any]] = []
    for source, doc in items:
        if doc is None:
            continue
        if _is_list(doc, custom):
            raw_items = doc.get("items")
            if raw_items is None:
                continue
            if not isinstance(raw_items, list):
                errors.append(SpecError("must be a list of objects", source=source, obj=str(doc.get("kind")),
                                        field="items"))
                continue
            for i, item in enumerate(raw_items):
                try:
                    parsed.append((source, parse_object(item, source, custom, skip_unknown=skip_unknown,
                                                        namespace=namespace)))
                except SpecError as e:
                    errors.append(_in_list(e, i))
            continue
        try:
            parsed.append((source, parse_object(doc, source, custom, skip_unknown=skip_unknown,
                                                namespace=namespace)))
        except SpecError as e:
            errors.append(e)
    for source, obj in parsed:
        size = json_size(obj.to_dict())
        if size > MAX_REQUEST_BYTES:
            errors.append(SpecError(request_too_large(size), source=source, obj=object_ref(obj)))
    seen: dict[tuple[str, str | None, str], Source] = {}
    for source, obj in parsed:
        key = object_key(obj)
        if key in seen:
            errors.append(SpecError(f"duplicate object: {object_ref(obj)} is also defined in "
                                    f"{seen[key].describe()}", source=source, obj=object_ref(obj),
                                    field="metadata.name"))
        else:
            seen[key] = source
    return parsed, errors


def _text_documents(text: str, file: str, errors: list[SpecError]) -> list[tuple[Source, Any]]:
    docs: list[tuple[Source, Any]] = []
    try:
        for item in iter_raw_documents(text, file):
            docs.append(item)
    except SpecError as e:
        errors.append(e)
    return docs


def parse_documents(text: str, source_file: str = "<inline>", custom: Mapping[str, CustomKind] | None = None,
                    *, skip_unknown: bool = False, namespace: str | None = None) -> list[Any]:
    """Parse a (multi-document) YAML/JSON text into typed objects; raise SpecErrors if any part is bad."""
    errors: list[SpecError] = []
    docs = _text_documents(text, source_file, errors)
    parsed, parse_errors = parse_sources(docs, custom, skip_unknown=skip_unknown, namespace=namespace)
    errors.extend(parse_errors)
    if errors:
        raise SpecErrors(_input_order(errors, {source_file: 0}))
    return [obj for _, obj in parsed]


def parse_mappings(docs: Iterable[Any], source_file: str = "<inline>",
                   custom: Mapping[str, CustomKind] | None = None, *, skip_unknown: bool = False,
                   namespace: str | None = None) -> list[Any]:
    """Parse manifest dicts (as a client hands them to the Python API) into typed objects, each validated
    once, as they are: no YAML dump and parse again. Raises SpecErrors if any part is bad."""
    parsed, errors = parse_sources([(Source(source_file, i), doc) for i, doc in enumerate(docs)], custom,
                                   skip_unknown=skip_unknown, namespace=namespace)
    if errors:
        raise SpecErrors(_input_order(errors, {source_file: 0}))
    return [obj for _, obj in parsed]


def _input_order(errors: list[SpecError], order: dict[str, int]) -> list[SpecError]:
    return sorted(errors, key=lambda e: (order.get(e.source.file, len(order)),
                                         -1 if e.source.doc is None else e.source.doc))


def manifest_files(path: Path, *, recursive: bool = True) -> list[Path]:
    """The manifest files of a directory in sorted order: with `recursive` every level (as
    `kubectl apply -R -f`), without it only the directory's own files (as `kubectl apply -f`)."""
    found = path.rglob("*") if recursive else path.glob("*")
    return sorted(p for p in found if p.is_file() and p.suffix in MANIFEST_SUFFIXES)


def load_documents(paths: str | Path | Iterable[str | Path], *, stdin: TextIO | None = None,
                   recursive: bool = True, custom: Mapping[str, CustomKind] | None = None,
                   skip_unknown: bool = False, namespace: str | None = None) -> list[Any]:
    """Load manifests from files, directories and "-" (stdin); all or nothing (SpecErrors).

    `custom`: kinds that stored CustomResourceDefinitions define; `skip_unknown`: store objects of kinds
    nobody defines instead of refusing them; `namespace`: as `kubectl apply -n` (`in_namespace`)."""
    return [obj for _, obj in load_sourced(paths, stdin=stdin, recursive=recursive, custom=custom,
                                           skip_unknown=skip_unknown, namespace=namespace)]


def load_sourced(paths: str | Path | Iterable[str | Path], *, stdin: TextIO | None = None,
                 recursive: bool = True, custom: Mapping[str, CustomKind] | None = None,
                 skip_unknown: bool = False, namespace: str | None = None) -> list[tuple[Source, Any]]:
    """`load_documents`, each object with where it came from (for errors found later, e.g. by `delete -f`).
    `namespace`: the namespace for objects that name none, as `kubectl apply -n` (`in_namespace`)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    errors: list[SpecError] = []
    docs: list[tuple[Source, Any]] = []
    order: dict[str, int] = {}  # file -> position in the input, to report errors in input order
    for p in paths:
        p = str(p)
        order.setdefault(p, len(order))
        if p == "-":
            docs.extend(_text_documents((stdin or sys.stdin).read(), "-", errors))
            continue
        if not p.strip():
            errors.append(SpecError("an empty file name (say which file or directory)", source=Source(repr(p))))
            continue
        path = Path(p)
        if path.is_dir():
            files = manifest_files(path, recursive=recursive)
        elif path.exists():
            files = [path]
        else:
            errors.append(SpecError("no such file or directory", source=Source(p)))
            continue
        for f in files:
            order.setdefault(str(f), len(order))
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                errors.append(SpecError(f"cannot read: {e}", source=Source(str(f))))
                continue
            docs.extend(_text_documents(text, str(f), errors))
    parsed, parse_errors = parse_sources(docs, custom, skip_unknown=skip_unknown, namespace=namespace)
    errors.extend(parse_errors)
    if errors:
        raise SpecErrors(_input_order(errors, order))
    return parsed
