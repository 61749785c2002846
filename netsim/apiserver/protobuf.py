"""Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's typed clients create.

kubectl's `create configmap|secret|namespace|serviceaccount` (its typed clientset) send
`application/vnd.kubernetes.protobuf`: the 4-byte magic `k8s\\0`, then a `runtime.Unknown` message
(k8s.io/apimachinery pkg/runtime/generated.proto: typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2,
contentEncoding = 3, contentType = 4) whose `raw` is the object's own message (k8s.io/api core/v1
generated.proto; ObjectMeta from apimachinery pkg/apis/meta/v1/generated.proto). This decodes those
messages into the JSON form the rest of the server takes, from a table of their field numbers; a body of
any other kind is answered 415 (send JSON or YAML: `kubectl apply` and `kubectl create -f` do).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from netsim.apiserver import errors

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# message -> field number -> (JSON name, type); "[]T" repeated, "map:V" a map<string, V>
SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   6: ("resourceVersion", "string"), 11: ("labels", "map:string"),
                   12: ("annotations", "map:string"), 14: ("finalizers", "[]string")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"),
               4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 3: ("imagePullSecrets", "[]LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "LocalObjectReference": {1: ("name", "string")},
}
KINDS = ("ConfigMap", "Secret", "Namespace", "ServiceAccount")


class DecodeError(ValueError):
    pass


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        if i >= len(data):
            raise DecodeError("truncated varint")
        b = data[i]
        i += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, i
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) in order; length-delimited values as bytes."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(data, i)
        elif wire == 1:
            v, i = data[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(data, i)
            if i + n > len(data):
                raise DecodeError("truncated field")
            v, i = data[i:i + n], i + n
        elif wire == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        out.append((num, wire, v))
    return out


def _scalar(typ: str, wire: int, v: Any) -> Any:
    if typ == "string":
        return v.decode()
    if typ == "bytes":
        return v
    if typ == "bool":
        return bool(v)
    if typ == "int":
        return v - (1 << 64) if v >= 1 << 63 else v
    if typ == "double" and wire == 1:
        return struct.unpack("<d", v)[0]
    return decode_message(typ, v)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = SCHEMA[name]
    out: dict[str, Any] = {}
    for num, wire, v in _fields(data):
        if num not in schema:
            continue  # fields netsim does not read (status, timestamps set by the server)
        key, typ = schema[num]
        if typ.startswith("map:"):
            entry = {n: val for n, _, val in _fields(v)}
            k = entry.get(1, b"").decode()
            raw = entry.get(2, b"")
            out.setdefault(key, {})[k] = base64.b64encode(raw).decode() if typ == "map:bytes" else raw.decode()
        elif typ.startswith("[]"):
            out.setdefault(key, []).append(_scalar(typ[2:], wire, v))
        else:
            value = _scalar(typ, wire, v)
            if value != "":  # Go writes unset strings as "": its zero value, which JSON leaves out
                out[key] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the object's JSON form; ApiError 415 for kinds not in the table."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("the protobuf body does not start with the Kubernetes magic number")
    try:
        unknown = decode_message("Unknown", body[len(MAGIC):])
        tm = unknown.get("typeMeta") or {}
        kind = tm.get("kind", "")
        if kind not in KINDS:
            raise errors.ApiError(415, "UnsupportedMediaType",
                                  f"netsim decodes protobuf bodies of {', '.join(KINDS)} only, not {kind or 'this'}: "
                                  "send JSON or YAML (kubectl apply -f / create -f)")
        obj = decode_message(kind, unknown.get("raw", b""))
    except (DecodeError, UnicodeDecodeError, KeyError) as e:
        raise errors.bad_request(f"the protobuf body could not be decoded: {e}") from None
    return {"apiVersion": tm.get("apiVersion", "v1"), "kind": kind, **obj}
