"""An integration's `email:` rules: who may write to its address, and what a message means.

    email:
      from: ["jobsub@banner.example.edu", "@vendor.example.com"]
      fail_when: {subject: "(?i)error|failed", body: "rejected: [1-9]"}
      success_when: {subject: "(?i)completed"}
      otherwise: fail            # or: success, ignore

Patterns are Python regular expressions, searched (not matched from the start), each checked
when the catalog is read so that a typo is an error naming its line, not a rule that never
matches. A message matches `fail_when` or `success_when` when any pattern given there is
found in its field; `fail_when` is asked first.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from commands.catalog.fields import Strict

# Longer patterns are not rules a person writes; they are the sign of a paste gone wrong.
MAX_PATTERN = 500


class MatchSpec(Strict):
    subject: str | None = Field(default=None, max_length=MAX_PATTERN)
    body: str | None = Field(default=None, max_length=MAX_PATTERN)

    @field_validator("subject", "body")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    def found_in(self, subject: str, body: str) -> bool:
        return any(
            pattern is not None and re.search(pattern, text) is not None
            for pattern, text in ((self.subject, subject), (self.body, body))
        )


class EmailSpec(Strict):
    # Stored as read and read back by field name ("senders"): `from` is a Python keyword.
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, populate_by_name=True
    )
    # Envelope senders allowed to write: whole addresses, or "@domain" for a whole domain.
    # None given: anyone the mail relay lets through.
    senders: list[str] = Field(default_factory=list, alias="from")
    fail_when: MatchSpec | None = None
    success_when: MatchSpec | None = None
    otherwise: Literal["fail", "success", "ignore"] = "fail"

    @field_validator("senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        for sender in value:
            if "@" not in sender or " " in sender:
                raise ValueError(f"{sender!r} is not an e-mail address or an @domain")
        return [sender.lower() for sender in value]

    def allows(self, sender: str) -> bool:
        """Whether `sender` (an envelope sender) may write to the integration's address."""
        if not self.senders:
            return True
        sender = sender.lower()
        domain = "@" + sender.rpartition("@")[2]
        return any(s == sender or (s.startswith("@") and s == domain) for s in self.senders)

    def outcome(self, subject: str, body: str) -> str:
        """What a message means: fail, success or ignore."""
        if self.fail_when is not None and self.fail_when.found_in(subject, body):
            return "fail"
        if self.success_when is not None and self.success_when.found_in(subject, body):
            return "success"
        return self.otherwise
