"""Settings from the environment and `.env`, one class per concern.

Every variable is documented in `.env.example`. `load_settings()` turns a validation error into
one line that names the variable; the token is a `SecretStr` and never printed.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
DEFAULT_DB_PATH = Path("data") / "safewell.sqlite3"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # `NAME=` (as in .env.example) means "not set": the default applies.
        env_ignore_empty=True,
    )


def _split_ids(value: Any) -> Any:
    # Lists of ids are written "1,2,3" in the environment; JSON lists also work.
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            import json

            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class BotSettings(BaseSettings):
    """The Telegram side: token, API server, languages, bootstrap admins."""

    model_config = _config("BOT_")

    token: SecretStr | None = None
    api_base_url: str | None = None
    default_language: str = "en"
    languages: Annotated[list[str], NoDecode] = ["en", "zh"]
    admin_ids: Annotated[list[int], NoDecode] = []
    flood_messages: int = Field(20, ge=1)
    flood_window_seconds: float = Field(30.0, gt=0)
    # The bureau's time zone (IANA name): times citizens read and staff type are in it.
    timezone: str = "Asia/Shanghai"

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not TOKEN_RE.match(value.get_secret_value()):
            # The message must not echo the value.
            raise ValueError("does not look like a bot token (digits, a colon, then the secret)")
        return value

    @field_validator("admin_ids", "languages", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_ids(value)

    @field_validator("default_language")
    @classmethod
    def _lang(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2,3}", value):
            raise ValueError("must be a two- or three-letter language code such as en or zh")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "must be an IANA time zone such as Asia/Shanghai or Europe/Berlin "
                "(the system's tz database, or the tzdata package, must have it)"
            ) from None
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        """The bureau's time zone."""
        return ZoneInfo(self.timezone)

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class DatabaseSettings(BaseSettings):
    """Where cases, citizens and deliveries live."""

    model_config = _config("DATABASE_")

    url: str = f"sqlite+aiosqlite:///{DEFAULT_DB_PATH.as_posix()}"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _driver(cls, value: str) -> str:
        # People paste plain URLs; pick the async driver for them.
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value[len("postgresql://") :]
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class RedisSettings(BaseSettings):
    """Optional Redis: FSM storage and the shared broadcast rate limit."""

    model_config = _config("REDIS_")

    url: str | None = None
    # /readyz counts Redis as down when a ping takes longer than this.
    ping_seconds: float = Field(2.0, gt=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value or None


class WebhookSettings(BaseSettings):
    """Webhook mode, used when WEBHOOK_URL is set; long polling otherwise."""

    model_config = _config("WEBHOOK_")

    url: str | None = None
    path: str = "/telegram/webhook"
    secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Updates Telegram may have in flight at once (1-100; Telegram's own default is 40). Each
    # is acknowledged once kept, so more at once means a surge reaches the bot (and a crisis
    # late in it is read) sooner.
    max_connections: int = Field(100, ge=1, le=100)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be the public https:// URL Telegram will call")
        return value or None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram accepts 1-256 characters A-Z, a-z, 0-9, _ and -.
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value


class OfficersSettings(BaseSettings):
    """The duty officers' forum supergroup and the handoff guarantees."""

    model_config = _config("OFFICERS_")

    chat_id: int | None = None
    backup_chat_id: int | None = None
    repage_minutes: float = Field(5.0, gt=0)
    escalate_minutes: float = Field(15.0, gt=0)
    wait_notice_minutes: float = Field(3.0, gt=0)
    transcript_messages: int = Field(10, ge=0, le=50)
    # How often the handoff loop re-pages, escalates, sends wait notices and retries deliveries.
    loop_seconds: float = Field(5.0, gt=0)
    # This soon after a close the citizen can bring the case back instead of starting over.
    reopen_hours: float = Field(24.0, ge=0)
    # Messages a minute the bot sends to the forum (Telegram lets a group take about 20; 0:
    # no lane of our own, Telegram's 429s alone) and how many of them ordinary cases leave
    # free for urgent ones. With several processes, divide per_minute among them.
    per_minute: int = Field(20, ge=0)
    urgent_reserve: int = Field(5, ge=0)
    # How long a process keeps a case it works on (delivering, relaying, re-paging) before
    # another may take it over; renewed while it works, so only a dead process's runs out.
    claim_seconds: float = Field(15.0, gt=0)
    # /readyz reports the relay outbox stuck once an officer's message has waited this long.
    outbox_stuck_seconds: float = Field(120.0, gt=0)

    @field_validator("chat_id", "backup_chat_id")
    @classmethod
    def _supergroup(cls, value: int | None) -> int | None:
        if value is not None and value >= 0:
            raise ValueError("must be a group id, a negative number like -1001234567890")
        return value


class IntakeSettings(BaseSettings):
    """The durable inbox every update passes through before it is handled."""

    model_config = _config("INTAKE_")

    # Updates handled at once (different chats; one chat's updates are handled in order).
    concurrency: int = Field(32, ge=1, le=1024)
    # How long a process keeps an update it is handling before another may take it over
    # (renewed while it works, so only a dead process's updates are taken over).
    lease_seconds: float = Field(10.0, gt=0)
    # A failing update is retried with backoff this many times, then parked (logged, kept).
    max_attempts: int = Field(8, ge=1)
    # Where updates are kept while the database is away (one file per process, drained into
    # the database when it is back).
    spool_dir: Path = Path("data") / "spool"


class FaqSettings(BaseSettings):
    """Where the knowledge lives and how sure the matcher must be."""

    model_config = _config("FAQ_")

    knowledge_dir: Path = Path("knowledge")
    answer_threshold: float | None = Field(None, ge=0, le=1)
    suggest_threshold: float | None = Field(None, ge=0, le=1)
    margin: float | None = Field(None, ge=0, le=1)


class AlertSettings(BaseSettings):
    """Broadcast speed and the two-person rule."""

    model_config = _config("ALERTS_")

    rate: float = Field(25.0, gt=0, le=1000)
    paid_broadcast: bool = False
    concurrency: int = Field(16, ge=1, le=512)
    approval_severities: Annotated[list[str], NoDecode] = ["Extreme", "Severe"]
    api_token: SecretStr | None = None

    @field_validator("approval_severities", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_ids(value)


class RetentionSettings(BaseSettings):
    """How long data that is not an official record is kept (days; 0 keeps it forever).

    Cases are official records and are never deleted by the bot. A background job
    (`bot.retention`) deletes what is older, run by one process at a time.
    """

    model_config = _config("RETENTION_")

    # Citizens' messages outside any case (the transcript shown on a later case card).
    messages_days: int = Field(30, ge=0)
    # Questions the FAQ saw, with their 👍/👎 (for `safewell knowledge gaps` and calibration).
    faq_queries_days: int = Field(90, ge=0)
    # Ids of handled updates (Telegram redelivers for at most about a day).
    processed_updates_days: int = Field(3, ge=0)
    # Who got which alert, counted from when the alert finished or expired, whichever is
    # later: an update or cancellation of an alert reaches those recorded as having got it.
    alert_deliveries_days: int = Field(30, ge=0)
    # How often the job runs (across all processes together).
    interval_minutes: float = Field(60.0, gt=0)


class StatsSettings(BaseSettings):
    """Statistics: the weekly report to communications staff and admins."""

    model_config = _config("STATS_")

    # Post last week's figures and chart to every staff member and admin once a week.
    weekly_report: bool = False
    # When, in BOT_TIMEZONE: the weekday (0 Monday … 6 Sunday) and the hour.
    weekly_weekday: int = Field(0, ge=0, le=6)
    weekly_hour: int = Field(9, ge=0, le=23)


class LogSettings(BaseSettings):
    """How the processes log."""

    model_config = _config("LOG_")

    # "text": plain lines; "json": one JSON object per line with update, citizen, case and
    # alert ids as fields (for a log pipeline).
    format: Literal["text", "json"] = "text"


class Settings:
    """All settings, read once by the composition root."""

    def __init__(self, env_file: str | Path | None = ".env", **overrides: Any) -> None:
        def group(cls: type[BaseSettings], key: str) -> Any:
            try:
                return cls(_env_file=env_file, **overrides.get(key, {}))
            except ValidationError as exc:
                prefix = str(cls.model_config.get("env_prefix", ""))
                raise ConfigError(describe_validation_error(exc, prefix)) from None

        self.bot: BotSettings = group(BotSettings, "bot")
        self.database: DatabaseSettings = group(DatabaseSettings, "database")
        self.redis: RedisSettings = group(RedisSettings, "redis")
        self.webhook: WebhookSettings = group(WebhookSettings, "webhook")
        self.officers: OfficersSettings = group(OfficersSettings, "officers")
        self.faq: FaqSettings = group(FaqSettings, "faq")
        self.intake: IntakeSettings = group(IntakeSettings, "intake")
        self.alerts: AlertSettings = group(AlertSettings, "alerts")
        self.retention: RetentionSettings = group(RetentionSettings, "retention")
        self.stats: StatsSettings = group(StatsSettings, "stats")
        self.log: LogSettings = group(LogSettings, "log")

    def require_token(self) -> SecretStr:
        """The token, or a ConfigError saying how to get one."""
        if self.bot.token is None:
            raise ConfigError("BOT_TOKEN: is not set (ask @BotFather for a token)")
        return self.bot.token


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """One line naming the variable(s) and what is wrong, never the value."""
    parts = []
    for err in exc.errors():
        name = prefix + "_".join(str(p) for p in err["loc"]).upper()
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {msg}")
    return "; ".join(parts)


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read every settings group; raise ConfigError with one clear line on bad input."""
    return Settings(env_file=env_file, **overrides)
