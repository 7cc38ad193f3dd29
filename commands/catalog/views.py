"""Typed views of the catalog entries kept on `Integration` and `System` rows.

A row's `spec` is its entry as JSON, as the sync last wrote it. Reading it through these
views gives the entry's pydantic model, so every default is the one declared in spec.py and
nowhere else, and a key's type is the model's rather than whatever the JSON holds.

The views are shared and cached: treat what they return as read-only.
"""

from __future__ import annotations

import copy
import logging
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError, create_model

from commands.catalog.spec import IntegrationSpec, SystemSpec
from storage.models import Integration, System

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=BaseModel)
_Path = tuple[str | int, ...]

# Validating an entry takes about 20 µs, and `/integ status` reads every integration's on
# each call. An entry is kept by model and id, and reused while the stored JSON still equals
# what was validated (about 0.3 µs to compare): rows of a later session hit it, and an entry
# the sync (or anything else) replaced is validated afresh rather than trusted by timestamp.
_MAX_CACHED = 10_000
# Rows and bare columns are kept apart: a broken entry is mended from the row's columns in
# one and not the other, and the two alternating in one slot would redo (and log) it each time.
_Key = tuple[type[BaseModel], str, bool]
_Cached = tuple[Any, Mapping[str, Any] | None, BaseModel]
_cache: dict[_Key, _Cached] = {}
# Pruning removes at least one key a round; an entry has a few dozen at most.
_MAX_ROUNDS = 50


def integration_spec(row: Integration) -> IntegrationSpec:
    """The catalog entry of an integration row, removed ones included."""
    return _view(IntegrationSpec, row.id, row.spec, lambda: _integration_columns(row))


def system_spec(row: System) -> SystemSpec:
    """The catalog entry of a system row, removed ones included."""
    return _view(
        SystemSpec, row.id, row.spec, lambda: {"id": row.id, "name": row.name, "vendor": row.vendor}
    )


def integration_spec_of(
    stored: Mapping[str, Any] | None, integration_id: str | None = None
) -> IntegrationSpec:
    """The entry from `Integration.spec` selected as a column, without its row."""
    columns: dict[str, Any] = {} if integration_id is None else {"id": integration_id}
    return _view(IntegrationSpec, integration_id, stored, lambda: columns, from_row=False)


def _integration_columns(row: Integration) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "source": row.source_id,
        "target": row.target_id,
        "mechanism": row.mechanism,
        "schedule": row.schedule,
        "timezone": row.timezone,
        "owner": row.owner,
        "channel": row.channel,
    }


def _view(
    model: type[_M],
    ident: str | None,
    stored: Mapping[str, Any] | None,
    columns: Callable[[], Mapping[str, Any]],
    *,
    from_row: bool = True,
) -> _M:
    raw: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
    if ident is None:
        found = raw.get("id")
        ident = found if isinstance(found, str) else None
    key = (model, ident, from_row) if ident is not None else None
    hit = _cache.get(key) if key is not None else None
    if hit is not None:
        snapshot, salvaged_with, cached = hit
        if snapshot == raw and (salvaged_with is None or salvaged_with == columns()):
            return cast(_M, cached)
    used: Mapping[str, Any] | None = None
    try:
        parsed = model.model_validate(raw)
    except ValidationError:
        used = dict(columns())
        parsed = _salvage(model, raw, used)
    if key is not None:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        # A copy: a caller changing the stored dict in place must not change the snapshot.
        _cache[key] = (copy.deepcopy(dict(raw)), used, parsed)
    return parsed


# -- entries that no longer validate ----------------------------------------------------------
#
# A stored entry can fail today's model: an integration removed from the catalog keeps the
# entry an older version of the bot wrote, and a catalog refused after an upgrade leaves the
# live rows as they were. Reading must not fail a command over it, nor invent what the
# catalog said, so such an entry is read key by key:
# - a key that still validates is kept;
# - one that does not is treated as absent, so the model's default applies: an invalid
#   heartbeat or probe is none, an invalid item of a list is left out, and an invalid
#   schedule or time zone is the row's column if that one validates;
# - the required keys (ids, names, people, channels: all text) are kept as text even if
#   today's rules refuse them, taken from the row's columns when missing (the sync writes
#   both from the same entry), and empty when there is nothing to take them from.
# A monitor read this way may therefore stop (its sync sees no heartbeat or probe), which is
# what an entry the catalog would refuse today should do. It is logged once per entry and
# process (the result is cached like any other); the row is not written, since the next
# accepted catalog replaces it.


def _lenient(model: type[_M]) -> type[_M]:
    """`model` with its required keys optional (empty) and unchecked: what is left of an
    entry once the keys that fail are taken out must still make a model."""
    required = {name: field for name, field in model.model_fields.items() if field.is_required()}
    for name, field in required.items():
        if not _is_text(field.annotation):
            raise TypeError(f"{model.__name__}.{name}: a required key must be text to be relaxed")
    relaxed: dict[str, Any] = {name: (str, "") for name in required}
    return cast(type[_M], create_model(f"Stored{model.__name__}", __base__=model, **relaxed))


def _is_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    return typing.get_origin(annotation) is typing.Literal and all(
        isinstance(arg, str) for arg in typing.get_args(annotation)
    )


_LENIENT: dict[type[BaseModel], type[BaseModel]] = {
    IntegrationSpec: _lenient(IntegrationSpec),
    SystemSpec: _lenient(SystemSpec),
}


def _salvage(model: type[_M], raw: Mapping[str, Any], columns: Mapping[str, Any]) -> _M:
    lenient = _LENIENT[model]
    data: dict[str, Any] = {**columns, **copy.deepcopy(dict(raw))}
    filled = sorted(columns.keys() - raw.keys())
    dropped: list[str] = []
    parsed: BaseModel | None = None
    for _ in range(_MAX_ROUNDS):
        try:
            parsed = lenient.model_validate(data)
            break
        except ValidationError as exc:
            paths = {_failing(data, err["loc"]) for err in exc.errors()}
        # Deepest and last first, so an index still names the same item of its list.
        ordered = sorted(paths, key=lambda path: [(isinstance(p, str), p) for p in path])
        pruned = [what for path in reversed(ordered) for what in _prune(data, path, columns)]
        if not pruned:
            break  # an error this cannot take out, such as one about the entry as a whole
        dropped += pruned
    if parsed is None:
        dropped.append("everything but the row's columns")
        parsed = _columns_only(lenient, columns)
    log.warning(
        "stored catalog entry %r no longer validates; read with %s from its row, without %s",
        columns.get("id", data.get("id")),
        ", ".join(filled) or "nothing",
        ", ".join(dropped) or "anything",
    )
    return cast(_M, parsed)


def _columns_only(lenient: type[BaseModel], columns: Mapping[str, Any]) -> BaseModel:
    try:
        return lenient.model_validate(columns)
    except ValidationError:
        return lenient.model_validate({})


def _failing(data: Any, loc: tuple[int | str, ...]) -> _Path:
    """Where in `data` an error's `loc` points. pydantic adds the names of union branches,
    which are no keys of the entry, and a missing key stops the walk at what holds it, so
    that is what goes: `heartbeat` without its `key` is no heartbeat."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        path.append(part)
    return tuple(path)


def _prune(data: dict[str, Any], path: _Path, columns: Mapping[str, Any]) -> list[str]:
    """Take what `path` names out of `data`; what was taken, for the log."""
    if not path:
        return []
    if len(path) == 1 and isinstance(path[0], str):
        name = path[0]
        if name in columns and data.get(name) != columns[name]:
            data[name] = columns[name]  # the entry's own value fails; the row's may not
            return [f"{name} (the row's column instead)"]
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return []
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        del node[last]
    elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        del node[last]
    else:
        return []
    return [".".join(str(p) for p in path)]
