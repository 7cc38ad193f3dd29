"""Settings, read once from the environment at start-up.

A missing or contradictory setting raises `SettingsError` with one line that names the
variable and what is wrong; the CLI prints that line and exits, never a traceback.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.mailbox_url import MailboxUrl

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
BUNDLED_CATALOG = Path(__file__).resolve().parent.parent / "examples" / "catalog.yml"


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load_settings` hands the environment in. BaseSettings would otherwise fill every
        # field not given from os.environ as well, so a SLACK_BOT_TOKEN in the shell would leak
        # into an environment a test (or a caller) built on purpose.
        return (init_settings,)

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///integ.db"
    integ_catalog: Path | None = None
    integ_webhook_token: str | None = None
    integ_fallback_channel: str | None = None
    # inf would pass gt=0 and then crash the scheduler at start-up with a traceback.
    integ_tick_seconds: float = Field(default=30, gt=0, allow_inf_nan=False)
    integ_status_poll_seconds: float = Field(default=300, gt=0, allow_inf_nan=False)
    integ_digest_channel: str | None = None
    # When the digest goes out: a weekday (mon … sun) at an hour, in a timezone.
    integ_digest_weekday: int = 0
    integ_digest_hour: int = Field(default=9, ge=0, le=23)
    integ_digest_timezone: str = "UTC"
    # A system is taken for down when this many integrations touching it fail within the
    # window (commands/outages); 0 turns that off (vendor incidents still open outages).
    integ_outage_integrations: int = Field(default=3, ge=0)
    integ_outage_window_minutes: float = Field(default=5, gt=0, allow_inf_nan=False)
    # Where people and jobs reach the bot, e.g. https://integ-bot.example.edu; shown in ping
    # URLs. Unset: the path alone is shown.
    integ_public_url: str | None = Field(default=None, pattern=r"^https?://")
    # How long what Slack said about a person, a user group or a channel is used before it
    # is asked again (in the background: the last answer serves meanwhile).
    integ_directory_ttl_seconds: float = Field(default=300, gt=0, allow_inf_nan=False)
    # Days kept before the retention duty (commands/retention) deletes them: heartbeat pings,
    # raw hook bodies, and outbox rows sent or failed for good with their attempts. History
    # (alerts, transitions, changes, reviews, audit) is kept. The upper bound keeps "now
    # minus that many days" a date a database can store.
    integ_retain_pings_days: int = Field(default=30, ge=1, le=36500)
    integ_retain_hook_bodies_days: int = Field(default=30, ge=1, le=36500)
    integ_retain_outbox_days: int = Field(default=30, ge=1, le=36500)
    # A Home tab not opened for this many days is forgotten: it is no longer published on
    # every change to its integrations, until its owner opens it again.
    integ_retain_homes_days: int = Field(default=90, ge=1, le=36500)
    port: int = Field(default=3000, ge=1, le=65535)
    # E-mail intake (commands/mail): an SMTP listener, off unless a port is given, that a
    # campus relay forwards to; <integration>@INTEG_MAIL_DOMAIN is each integration's address.
    integ_smtp_port: int | None = Field(default=None, ge=1, le=65535)
    integ_smtp_host: str = "127.0.0.1"
    integ_mail_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
    integ_smtp_max_bytes: int = Field(default=10_000_000, ge=10_000, le=100_000_000)
    # STARTTLS with this certificate chain and key (PEM files); AUTH with this login. Both
    # optional; AUTH is only offered once the connection is encrypted when TLS is set up.
    integ_smtp_tls_cert: Path | None = None
    integ_smtp_tls_key: Path | None = None
    integ_smtp_user: str | None = None
    integ_smtp_password: str | None = None
    # Or a mailbox the addresses are delivered to, read every few seconds (bot/workers/
    # mailbox.py): imaps://user:password@host/INBOX. Done messages are moved to the folder.
    integ_imap_url: str | None = None
    integ_imap_done_folder: str = Field(default="integ-bot-done", min_length=1)
    integ_imap_poll_seconds: float = Field(default=60, ge=5, allow_inf_nan=False)

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "integ_webhook_token",
        "integ_fallback_channel",
        "integ_digest_channel",
        "integ_catalog",
        "integ_public_url",
        "integ_smtp_port",
        "integ_mail_domain",
        "integ_smtp_tls_cert",
        "integ_smtp_tls_key",
        "integ_smtp_user",
        "integ_smtp_password",
        "integ_imap_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `FOO=` in a .env or compose file means "not set", not "set to the empty string".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("integ_digest_weekday", mode="before")
    @classmethod
    def _weekday(cls, value: object) -> object:
        if isinstance(value, str):
            name = value.strip().lower()
            for number, day in enumerate(WEEKDAYS):
                # "mon", "Monday" and "MONDAY" all mean Monday; numbers are refused, because
                # cron counts from Sunday and ISO from Monday.
                if len(name) >= 3 and day.startswith(name):
                    return number
            raise ValueError(f"must be a weekday: {', '.join(d[:3] for d in WEEKDAYS)}")
        return value

    @field_validator("integ_digest_weekday")
    @classmethod
    def _weekday_range(cls, value: int) -> int:
        if not 0 <= value <= 6:
            raise ValueError(f"must be a weekday: {', '.join(d[:3] for d in WEEKDAYS)}")
        return value

    @field_validator("integ_digest_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use a name like Europe/Paris") from None
        return value

    @field_validator("integ_imap_url")
    @classmethod
    def _imap_url(cls, value: str | None) -> str | None:
        if value is not None:
            MailboxUrl.parse(value)  # a ValueError names what is wrong
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _database_url_shape(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # The psycopg 3 driver is the one installed; accept the common spelling.
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite:", "postgresql+psycopg:")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.slack_app_token and not self.slack_bot_token:
            raise ValueError("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not; set both")
        if self.slack_bot_token and not self.slack_app_token and not self.slack_signing_secret:
            raise ValueError("SLACK_SIGNING_SECRET is required with SLACK_BOT_TOKEN in HTTP mode")
        if self.integ_smtp_port is not None and self.integ_mail_domain is None:
            raise ValueError("INTEG_SMTP_PORT is set but INTEG_MAIL_DOMAIN is not; set both")
        if self.integ_imap_url is not None and self.integ_mail_domain is None:
            raise ValueError("INTEG_IMAP_URL is set but INTEG_MAIL_DOMAIN is not; set both")
        if (self.integ_smtp_tls_cert is None) != (self.integ_smtp_tls_key is None):
            raise ValueError("INTEG_SMTP_TLS_CERT and INTEG_SMTP_TLS_KEY go together; set both")
        if (self.integ_smtp_user is None) != (self.integ_smtp_password is None):
            raise ValueError("INTEG_SMTP_USER and INTEG_SMTP_PASSWORD go together; set both")
        if self.integ_smtp_tls_cert is not None and self.integ_smtp_tls_key is not None:
            try:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(self.integ_smtp_tls_cert, self.integ_smtp_tls_key)
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise ValueError(f"INTEG_SMTP_TLS_CERT/KEY: cannot be loaded: {reason}") from None
        if self.integ_imap_url is not None:
            if MailboxUrl.parse(self.integ_imap_url).folder == self.integ_imap_done_folder:
                raise ValueError("INTEG_IMAP_DONE_FOLDER must differ from the folder read")
        return self

    @property
    def local_mode(self) -> bool:
        return self.slack_bot_token is None

    @property
    def catalog_path(self) -> Path:
        if self.integ_catalog is not None:
            return self.integ_catalog
        here = Path("catalog.yml")
        return here if here.exists() else BUNDLED_CATALOG


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from `environ` (the process environment by default)."""
    env = dict(os.environ if environ is None else environ)
    lowered = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    try:
        # model_validate reads only `lowered`, so tests can pass an environment of their own.
        settings = Settings.model_validate(lowered)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None
    if settings.integ_catalog is not None and not settings.integ_catalog.is_file():
        raise SettingsError(f"INTEG_CATALOG: file not found: {settings.integ_catalog}")
    return settings


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["loc"]:
        return f"{str(first['loc'][0]).upper()}: {message}"
    return message
