"""Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): what `kubectl get` prints.

The API server renders rows with the same printers kubectl shows (k8s pkg/printers/internalversion, served
through k8s.io/apiserver pkg/endpoints/handlers/response.go transformResponseObject and
pkg/registry/rest/table.go). netsim's columns come from netsim.printers, the ones `netsim get` prints;
`-o wide` columns are priority 1. Each row carries the object's metadata (`includeObject=Metadata`, the
default), the whole object (`Object`) or nothing (`None`); kubectl adds NAMESPACE and labels from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from netsim import printers

# netsim get shows a Service's endpoints; kubectl's Service printer does not (printers.go printService).
NETSIM_ONLY_COLUMNS = {"Service": {"ENDPOINTS"}}
NUMBER_COLUMNS = {"RESTARTS", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "DATA", "SECRETS"}


def wants_table(accept: str) -> bool:
    for part in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:])
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
    return False


def table_version(accept: str) -> str:
    for part in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:])
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
    return "v1"


def _row_object(obj: Mapping[str, Any], include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(kind: str, objects: Sequence[Mapping[str, Any]], *, resource_version: str, include: str = "Metadata",
          version: str = "v1", cont: str | None = None, remaining: int | None = None) -> dict[str, Any]:
    header, _ = printers.table(kind, [], wide=False)
    wide_header, rows = printers.table(kind, objects, wide=True)
    drop = NETSIM_ONLY_COLUMNS.get(kind, set())
    keep = [i for i, h in enumerate(wide_header) if h not in drop]
    columns = []
    for i in keep:
        name = wide_header[i]
        col: dict[str, Any] = {"name": name.title() if name != "NAME" else "Name",
                               "type": "integer" if name in NUMBER_COLUMNS and kind in ("ConfigMap", "Secret",
                                                                                          "ServiceAccount") else "string",
                               "format": "name" if name == "NAME" else "", "description": "",
                               "priority": 0 if name in header else 1}
        columns.append(col)
    out_rows = []
    for obj, row in zip(objects, rows):
        cells: list[Any] = []
        for i in keep:
            cell = row[i]
            if columns[len(cells)]["type"] == "integer":
                try:
                    cell = int(cell)
                except ValueError:
                    pass
            cells.append(cell)
        out_rows.append({"cells": cells, "object": _row_object(obj, include)})
    md: dict[str, Any] = {"resourceVersion": resource_version}
    if cont:
        md["continue"] = cont
    if remaining is not None:
        md["remainingItemCount"] = remaining
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": md, "columnDefinitions": columns,
            "rows": out_rows}
