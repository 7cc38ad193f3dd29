"""A large, valid, deterministic catalog: ~40 systems and 1,000 integrations between them.

It varies what the real format allows (mechanisms, realtime and cron schedules, time zones,
owners given as user IDs or e-mail addresses, shared and own channels, runbooks as URLs or
text, heartbeats, probes, field mappings, review cadences) so the rows the server reads are
shaped like a real institution's, not 1,000 copies of one entry.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

# (id, display name, vendor): the kind of systems a university connects.
_SYSTEMS: list[tuple[str, str, str]] = [
    ("slate", "Slate CRM", "Technolutions"),
    ("banner", "Ellucian Banner", "Ellucian"),
    ("colleague", "Ellucian Colleague", "Ellucian"),
    ("workday", "Workday HCM", "Workday"),
    ("workday-fin", "Workday Financials", "Workday"),
    ("salesforce", "Salesforce Education Cloud", "Salesforce"),
    ("canvas", "Canvas LMS", "Instructure"),
    ("moodle", "Moodle", "Moodle HQ"),
    ("touchnet", "TouchNet Marketplace", "TouchNet"),
    ("okta", "Okta Workforce Identity", "Okta"),
    ("entra", "Microsoft Entra ID", "Microsoft"),
    ("mulesoft", "MuleSoft Anypoint", "Salesforce"),
    ("boomi", "Boomi AtomSphere", "Boomi"),
    ("peoplesoft", "PeopleSoft Campus Solutions", "Oracle"),
    ("raisers-edge", "Raisers Edge NXT", "Blackbaud"),
    ("navigate", "EAB Navigate", "EAB"),
    ("starfish", "Starfish", "EAB"),
    ("handshake", "Handshake", "Handshake"),
    ("starrez", "StarRez Housing", "StarRez"),
    ("transact", "Transact Campus ID", "Transact"),
    ("parchment", "Parchment", "Parchment"),
    ("nslc", "National Student Clearinghouse", "NSC"),
    ("degreeworks", "Degree Works", "Ellucian"),
    ("coursedog", "Coursedog", "Coursedog"),
    ("25live", "25Live", "CollegeNET"),
    ("library", "Alma Library", "Ex Libris"),
    ("servicenow", "ServiceNow", "ServiceNow"),
    ("adobe-sign", "Adobe Acrobat Sign", "Adobe"),
    ("docusign", "DocuSign", "DocuSign"),
    ("concur", "SAP Concur", "SAP"),
    ("jaggaer", "Jaggaer Procurement", "Jaggaer"),
    ("kuali", "Kuali Research", "Kuali"),
    ("tableau", "Tableau", "Salesforce"),
    ("snowflake", "Snowflake warehouse", "Snowflake"),
    ("zoom", "Zoom", "Zoom"),
    ("google", "Google Workspace", "Google"),
    ("m365", "Microsoft 365", "Microsoft"),
    ("cashnet", "CASHNet", "Transact"),
    ("maxient", "Maxient Conduct", "Maxient"),
    ("titanium", "Titanium Counseling", "Titanium"),
]

_PURPOSES = [
    "admissions",
    "enrollments",
    "applicants",
    "accounts",
    "payments",
    "grades",
    "courses",
    "sections",
    "employees",
    "payroll",
    "journal entries",
    "vendors",
    "donors",
    "housing assignments",
    "card access",
    "transcripts",
    "degree audits",
    "advising notes",
    "user provisioning",
    "group memberships",
    "rosters",
    "holds",
    "appointments",
    "room bookings",
]

# (mechanism, weight): APIs and flat files dominate in practice.
_MECHANISMS = [("api", 40), ("flat-file", 30), ("vendor", 12), ("esb", 12), ("other", 6)]
_CRONS = [
    "0 2 * * *",
    "30 1 * * *",
    "15 3 * * *",
    "0 */4 * * *",
    "*/15 * * * *",
    "0 6 * * 1-5",
    "0 22 * * 0",
    "45 23 * * *",
    "0 0 1 * *",
    "*/5 7-19 * * 1-5",
]
_TIMEZONES = ["UTC", "America/Chicago", "America/New_York", "America/Denver", "Europe/London"]
_CADENCES = ["weekly", "monthly", "quarterly", "yearly", "90d", "180d"]
_FIELDS = [
    ("person.id", "SPRIDEN.ID"),
    ("person.email", "GOREMAL.EMAIL_ADDRESS"),
    ("application.status", "SARADAP.APST_CODE"),
    ("course.id", "SSBSECT.CRN"),
    ("term.code", "STVTERM.CODE"),
    ("employee.id", "Worker_ID"),
    ("amount", "TBRACCD.AMOUNT"),
    ("grade", "SHRTCKG.GRDE_CODE"),
]


@dataclass(frozen=True)
class GeneratedCatalog:
    path: Path
    systems: int
    # (id, name) of every integration, in file order: what the load asks about and expects.
    integrations: list[tuple[str, str]]


def _slack_id(rng: random.Random, prefix: str) -> str:
    return prefix + "0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=7))


def build_catalog(
    integrations: int = 1000, systems: int = 40, seed: int = 1
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The catalog as a mapping ready for YAML, and the (id, name) of each integration."""
    rng = random.Random(seed)
    chosen = _SYSTEMS[:systems]
    if len(chosen) < systems:
        chosen += [
            (f"system-{n:02d}", f"System {n:02d}", f"Vendor {n:02d}")
            for n in range(len(chosen), systems)
        ]
    system_entries: list[dict[str, Any]] = []
    for n, (ident, name, vendor) in enumerate(chosen):
        entry: dict[str, Any] = {"id": ident, "name": name, "vendor": vendor}
        entry["support"] = {
            "url": f"https://support.{ident}.example.com",
            "email": f"support@{ident}.example.com",
            "phone": f"+1 800 555 {n:04d}",
        }
        if n % 3 == 0:
            entry["status_page"] = f"https://status.{ident}.example.com"
        if n % 2 == 0:
            entry["test_instance"] = f"https://{ident}-test.example.edu"
        system_entries.append(entry)

    people = [_slack_id(rng, "U") for _ in range(60)]
    people += [f"it-team-{n}@example.edu" for n in range(8)]
    channels = [_slack_id(rng, "C") for _ in range(150)]
    mechanisms = [m for m, _ in _MECHANISMS]
    weights = [w for _, w in _MECHANISMS]

    entries: list[dict[str, Any]] = []
    names: list[tuple[str, str]] = []
    for n in range(integrations):
        source, target = rng.sample(chosen, 2)
        purpose = rng.choice(_PURPOSES)
        ident = f"{source[0]}-{target[0]}-{n:04d}"
        name = f"{source[1]} to {target[1]} {purpose} {n:04d}"
        mechanism = rng.choices(mechanisms, weights)[0]
        realtime = mechanism == "api" and rng.random() < 0.7 or rng.random() < 0.15
        entry = {
            "id": ident,
            "name": name,
            "source": source[0],
            "target": target[0],
            "mechanism": mechanism,
            "schedule": "realtime" if realtime else rng.choice(_CRONS),
            "timezone": rng.choice(_TIMEZONES),
            "owner": rng.choice(people),
            # A third share a team channel; the rest have their own.
            "channel": rng.choice(channels[:20]) if rng.random() < 0.33 else rng.choice(channels),
        }
        backups = rng.sample(people, rng.randint(0, 2))
        if backups:
            entry["backups"] = backups
        roll = rng.random()
        if roll < 0.5:
            entry["runbook"] = f"https://wiki.example.edu/integ/{ident}"
        elif roll < 0.65:
            entry["runbook"] = (
                f"*If {purpose} stop arriving*\n1. Read the job log on `jobs01`.\n"
                f"2. Check {source[1]} and {target[1]} test instances.\n3. Re-run the export."
            )
        fields = [{"source": s, "target": t} for s, t in rng.sample(_FIELDS, rng.randint(0, 4))]
        if fields:
            entry["fields"] = fields
        if rng.random() < 0.4:
            entry["escalate_after"] = rng.choice(["15m", "30m", "1h", "4h"])
        review: dict[str, Any] = {"every": rng.choice(_CADENCES)}
        if rng.random() < 0.5:
            review["first_due"] = date(2026, 12, 1) + timedelta(days=rng.randint(-120, 120))
        entry["review"] = review
        if not realtime and rng.random() < 0.3:
            entry["heartbeat"] = {"key": f"hb-{ident}", "cron": entry["schedule"], "grace": "1h"}
        elif rng.random() < 0.1:
            entry["heartbeat"] = {"key": f"hb-{ident}", "every": "1d", "grace": "2h"}
        if mechanism == "api" and rng.random() < 0.3:
            entry["probe"] = {
                "url": f"https://api.example.edu/{ident}/health",
                "every": "5m",
                "timeout": "10s",
                "expect_status": 200,
            }
        entries.append(entry)
        names.append((ident, name))
    return {"systems": system_entries, "integrations": entries}, names


def write_catalog(
    directory: Path, integrations: int = 1000, systems: int = 40, seed: int = 1
) -> GeneratedCatalog:
    data, names = build_catalog(integrations, systems, seed)
    path = directory / "catalog.yml"
    save_catalog(data, path, "bench/catalog_gen.py")
    return GeneratedCatalog(path=path, systems=len(data["systems"]), integrations=names)


def save_catalog(data: dict[str, Any], path: Path, generator: str) -> None:
    """A catalog file from `build_catalog`'s mapping (as changed by whoever uses it), headed
    by the script that made it, so nobody mistakes it for a real catalog."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False, width=100)
    path.write_text(f"# generated by {generator}\n" + text, encoding="utf-8")
