"""Name tables built from the headers' enums (ENUMS, generated), and the
lookup that turns an unknown name into a sentence listing the valid ones."""
from __future__ import annotations

from typing import Dict, Mapping, Union

from ._prototypes import ENUMS
from .errors import E_INVALID, InvalidArgument


def table(enum: str, **aliases: str) -> Dict[str, int]:
    """The {name: value} table of a C enum type, plus aliases (name -> an
    existing name) kept for the Python names that predate the generated
    table."""
    out = dict(ENUMS[enum])
    for alias, target in aliases.items():
        out[alias] = out[target]
    return out


def lookup(names: Mapping[str, int], name: Union[str, int], what: str) -> int:
    """The value of name in names; an int that is one of the values passes.
    Anything else raises InvalidArgument naming the valid names."""
    if isinstance(name, str):
        if name in names:
            return names[name]
        key = name.lower().replace("-", "_")
        if key in names:
            return names[key]
    elif isinstance(name, int) and not isinstance(name, bool) and name in names.values():
        return name
    raise InvalidArgument(E_INVALID, "unknown %s %r; the valid ones are %s" %
                          (what, name, ", ".join(sorted(names))))


def name_of(names: Mapping[str, int], value: int) -> str:
    """The first name of value in names (the C spelling comes first)."""
    for k, v in names.items():
        if v == value:
            return k
    return str(value)
