"""Kubernetes resource quantities (apimachinery resource.Quantity): "500m", "128Mi", "1e3", 2.

Exact arithmetic with Fraction, so 100m * 3 is 300m and not 0.30000000000000004.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_SUFFIX = {"": 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
           "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Fraction(1, 10**9), "u": Fraction(1, 10**6)}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(value: Any) -> Fraction:
    """A quantity as an exact number; ValueError with the API server's wording when it is not one."""
    m = _QUANTITY.match(str(value).strip())
    if not m or m.group(2) not in _SUFFIX or isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    return Fraction(m.group(1)) * _SUFFIX[m.group(2)]


def format_quantity(value: Fraction) -> str:
    """A number as a file/env value: whole numbers plainly (the kubelet writes integers)."""
    return str(int(value)) if value.denominator == 1 else str(float(value))


def canonical(value: Fraction | float) -> str:
    """The short form kubectl prints: whole numbers plainly, else milli-units ("250m"), else decimals."""
    v = Fraction(value).limit_denominator(10**9)
    if v.denominator == 1:
        return str(int(v))
    milli = v * 1000
    if milli.denominator == 1:
        return f"{int(milli)}m"
    return f"{int(round(float(milli)))}m"
