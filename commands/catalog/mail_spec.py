"""An integration's `email:` rules: who may write to its address, and what a message means.

    email:
      from: ["jobsub@banner.example.edu", "@vendor.example.com"]
      fail_when: {subject: "(?i)error|failed", body: "rejected: [1-9]"}
      success_when: {subject: "(?i)completed"}
      otherwise: fail            # or: success, ignore

Patterns are regular expressions (Python's syntax), searched (not matched from the start),
each checked when the catalog is read so that a typo is an error naming its line, not a rule
that never matches. A message matches `fail_when` or `success_when` when any pattern given
there is found in its field; `fail_when` is asked first.

They run on text from outside with the `regex` library, which backtracks far less than `re`,
lets other threads run while it searches, and stops a search after SEARCH_SECONDS: a pattern
such as `(a+)+$` must not hold the bot for minutes on one crafted message. A search that had
to stop counts as a failure report: a job's failure must never pass for a success.
"""

from __future__ import annotations

import logging
from typing import Literal

import regex
from pydantic import ConfigDict, Field, field_validator

from commands.catalog.fields import Strict

log = logging.getLogger(__name__)

# Longer patterns are not rules a person writes; they are the sign of a paste gone wrong.
MAX_PATTERN = 500
SEARCH_SECONDS = 0.25


class MatchSpec(Strict):
    subject: str | None = Field(default=None, max_length=MAX_PATTERN)
    body: str | None = Field(default=None, max_length=MAX_PATTERN)

    @field_validator("subject", "body")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                regex.compile(value)
            except regex.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    def found_in(self, subject: str, body: str) -> bool:
        """Whether a pattern is found; raises TimeoutError when one could not tell in time."""
        return any(
            pattern is not None
            and regex.search(pattern, text, timeout=SEARCH_SECONDS, concurrent=True) is not None
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
        try:
            if self.fail_when is not None and self.fail_when.found_in(subject, body):
                return "fail"
            if self.success_when is not None and self.success_when.found_in(subject, body):
                return "success"
        except TimeoutError:
            log.warning("e-mail rules gave up after %ss: taken as a failure", SEARCH_SECONDS)
            return "fail"
        return self.otherwise
