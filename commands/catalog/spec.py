"""The catalog file: its format, validation and errors that name file, line and key.

The YAML is composed into nodes first so every value keeps its line; pydantic then checks
shapes (unknown keys are errors, never silently ignored) and this module checks what
pydantic cannot see: duplicate ids and references between systems and integrations.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from yaml.constructor import SafeConstructor

from commands.catalog.fields import (
    Cron,
    Duration,
    Id,
    SlackUser,
    Strict,
    UserGroup,
    admins_field,
    cron_expression,
)
from commands.catalog.mail_spec import EmailSpec
from commands.catalog.time_spec import FreezeSpec, HoursSpec, WindowSpec

MECHANISMS = ("api", "flat-file", "vendor", "esb", "other")
REVIEW_CADENCES = {"weekly": 7, "monthly": 30, "quarterly": 91, "yearly": 365}
DEFAULT_REVIEW = "yearly"  # every integration is reviewed at least yearly
# libyaml's composer is several times faster and leaner than the pure-Python one, and its
# nodes carry the same line marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Support(Strict):
    url: str | None = None
    email: str | None = None
    phone: str | None = None
    contract: str | None = None


class SystemSpec(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    vendor: str | None = None
    support: Support | None = None
    status_page: str | None = Field(default=None, pattern=r"^https?://")
    test_instance: str | None = None
    maintenance: list[WindowSpec] = Field(default_factory=list)
    # Where the system's outages are told (commands/outages): one message here rather than
    # one in each channel of the integrations touching it.
    channel: str | None = Field(default=None, pattern=r"^[CG][A-Z0-9]{2,}$")


class FieldMapping(Strict):
    source: str
    target: str


class ReviewSpec(Strict):
    every: str = DEFAULT_REVIEW
    first_due: date | None = None

    @field_validator("every")
    @classmethod
    def _cadence(cls, value: str) -> str:
        if value in REVIEW_CADENCES or re.fullmatch(r"[1-9]\d{0,3}d", value):
            return value
        raise ValueError(
            f"{value!r} is not a review cadence; use weekly, monthly, quarterly, yearly or <N>d"
        )

    @property
    def interval(self) -> timedelta:
        if self.every in REVIEW_CADENCES:
            return timedelta(days=REVIEW_CADENCES[self.every])
        return timedelta(days=int(self.every[:-1]))


class HeartbeatSpec(Strict):
    key: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    cron: Cron | None = None
    every: Duration | None = None
    grace: Duration = "1h"

    @model_validator(mode="after")
    def _one_schedule(self) -> HeartbeatSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron or every")
        return self


class ProbeSpec(Strict):
    url: str = Field(pattern=r"^https?://")
    every: Duration = "5m"
    timeout: Duration = "10s"
    expect_status: int | None = Field(default=None, ge=100, le=599)
    expect_text: str | None = None
    failures: int = Field(default=2, ge=1, le=100)


class IntegrationSpec(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    source: Id
    target: Id
    mechanism: Literal["api", "flat-file", "vendor", "esb", "other"]
    schedule: str = "realtime"
    timezone: str = "UTC"
    owner: SlackUser
    backups: list[SlackUser] = Field(default_factory=list)
    # A Slack user group whose members are responders too.
    team: UserGroup | None = None
    channel: str = Field(pattern=r"^[CG][A-Z0-9]{2,}$")
    runbook: str | None = None
    fields: list[FieldMapping] = Field(default_factory=list)
    escalate_after: Duration | None = None
    review: ReviewSpec = Field(default_factory=ReviewSpec)
    heartbeat: HeartbeatSpec | None = None
    probe: ProbeSpec | None = None
    maintenance: list[WindowSpec] = Field(default_factory=list)
    # Its own working hours; the catalog's top-level `hours` when not given.
    hours: HoursSpec | None = None
    # Rules for the mail its jobs send to its address (commands/mail).
    email: EmailSpec | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return value if value == "realtime" else cron_expression(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone such as America/Chicago"
            ) from None
        return value


class CatalogSpec(Strict):
    # Responders of every integration, and the only ones besides an owner who may silence
    # for longer than a day: Slack user ids (or e-mails), or one user group.
    admins: Annotated[list[str] | str, BeforeValidator(admins_field)] = Field(default_factory=list)
    systems: list[SystemSpec] = Field(default_factory=list)
    integrations: list[IntegrationSpec] = Field(default_factory=list)
    freezes: list[FreezeSpec] = Field(default_factory=list)
    # Working hours of every integration that gives none of its own; none: always.
    hours: HoursSpec | None = None

    @field_validator("systems", "integrations", "freezes", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `integrations:` with nothing under it is YAML null: an empty list, not an error.
        return [] if value is None else value


@dataclass(frozen=True)
class CatalogError:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class CatalogInvalid(Exception):
    def __init__(self, errors: list[CatalogError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class Admins:
    users: tuple[str, ...] = ()
    group: str | None = None

    @classmethod
    def of(cls, value: list[str] | str) -> Admins:
        return cls(group=value) if isinstance(value, str) else cls(users=tuple(value))

    def as_json(self) -> dict[str, object]:
        return {"users": list(self.users), "group": self.group}

    @classmethod
    def from_json(cls, value: object) -> Admins:
        if not isinstance(value, dict):
            return cls()
        users = value.get("users")
        group = value.get("group")
        return cls(
            users=tuple(str(u) for u in users) if isinstance(users, list) else (),
            group=str(group) if isinstance(group, str) else None,
        )


@dataclass(frozen=True)
class Catalog:
    systems: dict[str, SystemSpec]
    integrations: dict[str, IntegrationSpec]
    sha256: str = ""
    source: str = ""
    admins: Admins = Admins()
    freezes: tuple[FreezeSpec, ...] = ()
    hours: HoursSpec | None = None

    def integrations_touching(self, system_id: str) -> list[IntegrationSpec]:
        return [i for i in self.integrations.values() if system_id in (i.source, i.target)]


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file; raise CatalogInvalid with every error found."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogInvalid(
            [CatalogError(str(path), 0, "(file)", exc.strerror or str(exc))]
        ) from None
    return parse_catalog(raw, str(path))


def parse_catalog(raw: bytes | str, filename: str = "catalog.yml") -> Catalog:
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Point at the line holding the first bad byte, so an editor can jump to it.
        bad_line = data[: exc.start].count(b"\n") + 1
        raise CatalogInvalid(
            [CatalogError(filename, bad_line, "(file)", f"not UTF-8: {exc}")]
        ) from None
    lines: dict[tuple[Any, ...], int] = {}
    errors: list[CatalogError] = []
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context_mark = getattr(exc, "context_mark", None)
        if mark is not None and context_mark is not None and not text[mark.index :].strip():
            # An unclosed quote or bracket is only noticed at the end of the file; the line
            # where it was opened is the one to fix.
            mark = context_mark
            problem = f"{problem} ({getattr(exc, 'context', None) or 'unclosed'})"
        line = mark.line + 1 if mark is not None else 0
        raise CatalogInvalid([CatalogError(filename, line, "(yaml)", str(problem))]) from None
    if node is None:
        value: Any = {}
    else:
        value = _to_python(node, (), lines, errors, filename, SafeConstructor())
    if errors:
        raise CatalogInvalid(errors)
    if not isinstance(value, dict):
        raise CatalogInvalid(
            [
                CatalogError(
                    filename, 1, "(top)", "must be a mapping with systems: and integrations:"
                )
            ]
        )
    errors = _cross_check(value, lines, filename)
    try:
        spec = CatalogSpec.model_validate(value)
    except ValidationError as exc:
        errors += _pydantic_errors(exc, lines, filename)
    if errors:
        raise CatalogInvalid(sorted(errors, key=lambda e: e.line))
    return Catalog(
        systems={s.id: s for s in spec.systems},
        integrations={i.id: i for i in spec.integrations},
        sha256=hashlib.sha256(data).hexdigest(),
        source=filename,
        admins=Admins.of(spec.admins),
        freezes=tuple(spec.freezes),
        hours=spec.hours,
    )


def _to_python(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    errors: list[CatalogError],
    filename: str,
    constructor: SafeConstructor,
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key in result:
                errors.append(
                    CatalogError(
                        filename,
                        key_node.start_mark.line + 1,
                        _dotted(path + (key,)),
                        "duplicate key",
                    )
                )
                continue
            result[key] = _to_python(
                value_node, path + (key,), lines, errors, filename, constructor
            )
            # An error about a key points at the key's own line, not its value's.
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(v, path + (i,), lines, errors, filename, constructor)
            for i, v in enumerate(node.value)
        ]
    return constructor.construct_object(node, deep=True)


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _line_for(path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _pydantic_errors(
    exc: ValidationError, lines: dict[tuple[Any, ...], int], filename: str
) -> list[CatalogError]:
    found: list[CatalogError] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors():
        # Unions (e.g. `str | None`) report one error per branch; the first is enough.
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        if loc in seen:
            continue
        seen.add(loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif err["type"] == "literal_error":
            message = f"must be one of {', '.join(MECHANISMS)}"
        elif err["type"] == "string_pattern_mismatch":
            message = _pattern_message(loc, err.get("input"))
        found.append(CatalogError(filename, _line_for(loc, lines), _dotted(loc), message))
    return found


def _is_union_tag(part: Any) -> bool:
    # pydantic names union branches in `loc` ("function-after[...]", "str", "none"); they are
    # not keys of the file.
    return isinstance(part, str) and (part.startswith("function-") or part in ("str", "none"))


def _pattern_message(loc: tuple[Any, ...], value: Any) -> str:
    last = loc[-1] if loc else ""
    if last == "channel":
        return f"{value!r} is not a Slack channel ID (like C0123ABCD)"
    if last in ("id", "source", "target"):
        return f"{value!r} is not a valid id: use lowercase letters, digits and dashes"
    if last in ("url", "status_page"):
        return f"{value!r} must start with http:// or https://"
    if last == "team":
        return f"{value!r} is not a Slack user group ID (like S0123ABCD)"
    if last == "key":
        return f"{value!r} may hold only letters, digits, dashes and underscores"
    return f"{value!r} has the wrong form"


def _cross_check(
    value: dict[str, Any], lines: dict[tuple[Any, ...], int], filename: str
) -> list[CatalogError]:
    """Duplicate ids and dangling references, checked on the raw mapping so they are
    reported together with shape errors rather than one round of fixes later."""
    errors: list[CatalogError] = []

    def err(path: tuple[Any, ...], message: str) -> None:
        errors.append(CatalogError(filename, _line_for(path, lines), _dotted(path), message))

    def items(section: str) -> list[tuple[int, dict[str, Any]]]:
        entries = value.get(section)
        if not isinstance(entries, list):
            return []
        return [(n, e) for n, e in enumerate(entries) if isinstance(e, dict)]

    systems: set[str] = set()
    for n, system in items("systems"):
        ident = system.get("id")
        if ident in systems:
            err(("systems", n, "id"), f"duplicate system id {ident!r}")
        if isinstance(ident, str):
            systems.add(ident)
    ids: set[str] = set()
    heartbeat_keys: set[str] = set()
    for n, integ in items("integrations"):
        ident = integ.get("id")
        if ident in ids:
            err(("integrations", n, "id"), f"duplicate integration id {ident!r}")
        if isinstance(ident, str):
            ids.add(ident)
        for end in ("source", "target"):
            ref = integ.get(end)
            if isinstance(ref, str) and ref not in systems:
                err(("integrations", n, end), f"no system with id {ref!r} under systems:")
        heartbeat = integ.get("heartbeat")
        key = heartbeat.get("key") if isinstance(heartbeat, dict) else None
        if isinstance(key, str):
            if key in heartbeat_keys:
                err(("integrations", n, "heartbeat", "key"), "duplicate heartbeat key")
            heartbeat_keys.add(key)
    return errors
