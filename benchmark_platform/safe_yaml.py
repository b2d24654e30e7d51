"""YAML from users, read within limits, and the value checks every input shares before it reaches PostgreSQL.

``yaml.safe_load`` has no limits: a 784-byte alias bomb expands to millions of nodes (47 s, 4 GB), a document
nested 100,000 deep overflows the composer's recursion, and a file of any size is read whole. ``load_yaml_file``
reads at most ``max_bytes`` of a regular file, decodes strict UTF-8, then walks the parser's events (no recursion)
counting nodes with every alias expanded and the depth an alias reaches, and stops at the first limit crossed,
before anything is built. Only then is the document composed and constructed, keeping the node tree so that an
error found later (pydantic's) can be reported with its line (``line_of``).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationInfo, field_validator

from benchmark_platform import files

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000
# What the database columns hold: PostgreSQL integer and bigint.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# JSON strings and text columns: PostgreSQL refuses NUL in text and jsonb.
NUL = "\x00"


class YamlInputError(ValueError):
    """A YAML file that is unreadable, too large, too deep, too expanded or malformed; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"{message} (line {line})" if line else message)


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    root: yaml.Node | None

    def line_of(self, location: tuple[int | str, ...]) -> int | None:
        return line_of(self.root, location)


def _read_text(path: Path, max_bytes: int) -> str:
    try:
        return files.read_text(path, max_bytes=max_bytes)
    except files.FileInputError as error:  # the caller names the path itself
        raise YamlInputError(error.reason, error.line) from error


def _check_events(text: str, max_depth: int, max_nodes: int) -> None:
    """Count nodes as construction would see them (aliases expanded) and their depth, without building anything."""
    open_nodes: list[list[Any]] = []  # [expanded nodes so far, anchor, height, keys seen or None, next is a key]
    anchored: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height)
    total = 0

    def add(count: int, height: int, line: int) -> None:
        nonlocal total
        total += count
        if total > max_nodes:
            raise YamlInputError(f"more than {max_nodes} nodes once aliases are expanded", line)
        if len(open_nodes) + height > max_depth:
            raise YamlInputError(f"nested deeper than {max_depth} levels", line)
        if open_nodes:
            parent = open_nodes[-1]
            parent[0] += count
            parent[2] = max(parent[2], height + 1)

    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark else None
        if open_nodes and open_nodes[-1][3] is not None and not isinstance(event, yaml.CollectionEndEvent):
            mapping = open_nodes[-1]
            if mapping[4] and isinstance(event, yaml.ScalarEvent) and event.value != "<<":
                if event.value in mapping[3]:
                    raise YamlInputError(f"duplicate key {event.value!r}", line)
                mapping[3].add(event.value)
            mapping[4] = not mapping[4]
        if isinstance(event, yaml.CollectionStartEvent):
            add(1, 1, line)
            keys = set() if isinstance(event, yaml.MappingStartEvent) else None
            open_nodes.append([0, event.anchor, 1, keys, True])
        elif isinstance(event, yaml.CollectionEndEvent):
            count, anchor, height, _keys, _next_is_key = open_nodes.pop()
            if anchor:
                anchored[anchor] = (count + 1, height)
        elif isinstance(event, yaml.ScalarEvent):
            if NUL in event.value:
                raise YamlInputError("NUL character in a value", line)
            add(1, 1, line)
            if event.anchor:
                anchored[event.anchor] = (1, 1)
        elif isinstance(event, yaml.AliasEvent):
            count, height = anchored.get(event.anchor, (1, 1))  # an undefined alias fails when composed
            add(count, height, line)


def load_yaml_text(text: str, *, max_depth: int = MAX_YAML_DEPTH, max_nodes: int = MAX_YAML_NODES) -> YamlDocument:
    """One YAML document from ``text`` within the limits; raises YamlInputError with the line."""
    try:
        _check_events(text, max_depth, max_nodes)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise YamlInputError(f"malformed YAML: {problem}", mark.line + 1 if mark else None) from error
    return YamlDocument(data, root)


def load_yaml_file(
    path: Path | str,
    *,
    max_bytes: int = MAX_YAML_BYTES,
    max_depth: int = MAX_YAML_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
) -> YamlDocument:
    """One YAML document from a regular file of at most ``max_bytes``; raises YamlInputError with the line."""
    return load_yaml_text(_read_text(Path(path), max_bytes), max_depth=max_depth, max_nodes=max_nodes)


def line_of(root: yaml.Node | None, location: tuple[int | str, ...]) -> int | None:
    """The line of the deepest node on a pydantic error location (``("versions", 2, "format")``) that exists."""
    node, line = root, None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            found = next((value for key, value in node.value if getattr(key, "value", None) == str(part)), None)
            if found is None:
                break
            line = next(key for key, value in node.value if value is found).start_mark.line + 1
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    if line is None and root is not None:
        line = root.start_mark.line + 1
    return line


# --- value types shared by manifests, catalogs and CLI options ------------------------------------------------


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def _no_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("contains a NUL character")
    return value


def jsonb_value(value: Any, depth: int = 0) -> Any:
    """``value`` if jsonb takes it (string keys, finite numbers, 64-bit integers, no NUL, bounded depth)."""
    if depth > MAX_YAML_DEPTH:
        raise ValueError(f"nested deeper than {MAX_YAML_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError(f"integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a finite number")
        return value
    if isinstance(value, str):
        return _no_nul(value)
    if isinstance(value, list):
        return [jsonb_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} is not a string")
            _no_nul(key)
        return {key: jsonb_value(item, depth + 1) for key, item in value.items()}
    raise ValueError(f"{type(value).__name__} is not a JSON value (quote dates and other typed scalars)")


def _number_without_bool(annotation: Any) -> bool:
    """Whether a field's type takes numbers but not booleans (``int``, ``float | None``, ``Annotated[int, ...]``)."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    arguments = typing.get_args(annotation)
    return bool(arguments) and bool not in arguments and any(_number_without_bool(item) for item in arguments)


class NoBooleanNumbers(BaseModel):
    """A model whose numeric fields refuse true/false (pydantic's lax mode would read them as 1 and 0)."""

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _number_without_bool(field.annotation):
            raise ValueError("expected a number, not true/false")
        return value


# Integers that fit the PostgreSQL column they are written to (or a JSON document), never booleans.
Int32 = Annotated[int, BeforeValidator(_no_bool), Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Int64 = Annotated[int, BeforeValidator(_no_bool), Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
# Finite floats, never booleans.
FiniteFloat = Annotated[float, BeforeValidator(_no_bool), Field(allow_inf_nan=False)]
# Text without NUL (PostgreSQL refuses it).
Text = Annotated[str, AfterValidator(_no_nul)]
# A JSON object PostgreSQL's jsonb accepts: string keys, finite numbers, 64-bit integers, no NUL, bounded depth.
JsonObject = Annotated[dict[str, Any], AfterValidator(jsonb_value)]
