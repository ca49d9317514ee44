"""Settings from the environment (and an optional `.env`), validated once at start-up.

Every variable is documented in the README's settings table; keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# WeeklySchedule and parse_days live in bot/core/schedules.py; imported from here by the rest of the bot.
from bot.core.schedules import QuarterlySchedule, WeeklySchedule, parse_days
from bot.core.service_owners import check_owner

__all__ = ["ConfigError", "QuarterlySchedule", "Settings", "WeeklySchedule", "load_settings", "parse_days"]

SLACK_API_URL_DEFAULT = "https://slack.com/api/"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _csv_parts(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return _csv_parts(value)
    return value


def _mapping(value: object, expected: str, clean: Callable[[str], str]) -> object:
    """ "KEY=value,KEY=value" as a dict (values passed through `clean`); anything else as given."""
    if not isinstance(value, str):
        return value
    mapping: dict[str, str] = {}
    for entry in _csv_parts(value):
        key, sep, target = entry.partition("=")
        target = clean(target.strip())
        if not sep or not key.strip() or not target:
            raise ValueError(f"expected {expected}, got {entry!r}")
        mapping[key.strip()] = target
    return mapping


class Settings(BaseSettings):
    """All configuration of the bot. Field names are the environment variable names, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = SLACK_API_URL_DEFAULT
    database_url: str = "sqlite:///postmortem-bot.core.db"
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port (tests)
    pagerduty_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    postmortems_channel: str = "postmortems"
    wins_channel: str = "wins"
    incident_channel_prefix: str = "inc-"
    # "PSERVICE1=#payments,PSERVICE2=C0123ABCD": incidents of these PagerDuty services go to an existing
    # channel instead of a new one per incident.
    service_channels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Unset: no announcement. Set: each PagerDuty incident's channel is announced there with a link (one
    # message, updated when the incident resolves or reopens).
    announce_channel: str = ""
    # Which PagerDuty incidents get a channel: their urgency is one of CHANNEL_URGENCIES and, when
    # CHANNEL_PRIORITIES is set, their priority one of those. The others are still recorded (KPIs) and
    # listed in TRIAGE_CHANNEL (unset: not listed) with an "Open a channel" button.
    channel_urgencies: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["high", "low"])
    channel_priorities: Annotated[list[str], NoDecode] = Field(default_factory=list)
    triage_channel: str = ""
    # A read-only PagerDuty REST API key: the e-mails of assignees and responders (webhooks carry none),
    # to invite the matching Slack users into the incident channel. Unset: nobody is invited.
    pagerduty_api_token: str | None = None
    pagerduty_api_url: str = "https://api.pagerduty.com"
    # "PUSER01=U0123ABCD,...": PagerDuty users invited as these Slack users, whatever their e-mails.
    pagerduty_user_map: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    response_target_minutes: int = Field(default=15, ge=1)
    timezone: str = "UTC"
    postmortem_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: str = "INFO"
    # Off for replicas that must never run jobs (and for tests that drive jobs with a fixed `now`).
    scheduler_enabled: bool = True
    # Scheduled jobs (bot/runtime/scheduler.py): "DAYS HH:MM" in TIMEZONE, see WeeklySchedule.
    retro_schedule: str = "fri 15:00"
    digest_schedule: str = "mon 09:00"
    # Days (in TIMEZONE) on which nudges go to people: "mon-fri", "sun-thu" is written "sun,mon-thu".
    working_days: str = "mon-fri"
    # Empty: the post-mortems channel.
    digest_channel: str = ""
    alert_mttr_minutes: int = Field(default=20, ge=1)
    alert_consecutive: int = Field(default=3, ge=1)
    win_streak: int = Field(default=10, ge=2)
    # How long one Web API call may take before the client gives up (the outbox then retries it).
    slack_api_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # The outbox's longest wait between two attempts at one message (back-off doubles up to this).
    outbox_max_backoff_seconds: float = Field(default=300.0, ge=0.1, le=3600)
    # How often /metrics' figures are recomputed (a scrape serves the last ones, bot/loop/metrics.py).
    metrics_refresh_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    # How long a replica's claim on an outbox row lasts: a replica that dies mid-send is taken over after it.
    outbox_claim_seconds: float = Field(default=60.0, ge=1, le=3600)
    # Space the outbox's Slack calls by Slack's published rate limits (bot/slack/rate_limits.py); false for a
    # Slack stand-in that has none (the tests, the benchmarks' sandbox).
    outbox_pacing: bool = True
    # Action items in the team's tracker (bot/trackers/): "jira", "github", or unset for none.
    action_item_tracker: Literal["jira", "github"] | None = None
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: str | None = None
    jira_project_key: str | None = None
    jira_issue_type: str = "Task"
    jira_labels: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["postmortem"])
    jira_webhook_secret: str | None = None
    github_token: str | None = None
    github_repository: str | None = None
    github_api_url: str = "https://api.github.com"
    github_webhook_secret: str | None = None
    # Where the tracker cannot reach the bot's webhooks: poll the linked issues every N minutes (0: never).
    tracker_poll_minutes: int = Field(default=0, ge=0, le=1440)
    # The docs repository (docs/docs-repository.md): a git URL or path to clone and push to; unset: no sync.
    docs_repo: str | None = None
    docs_repo_dir: str = "postmortems/"
    docs_schedule: str = "daily 02:00"
    # owner/name for the pull requests; unset: read from a GitHub DOCS_REPO URL.
    docs_github_repository: str | None = None
    # Where the bot keeps its clone of DOCS_REPO (fetched again on every run).
    docs_work_dir: str = ".postmortem-bot/docs-repo"
    # The runbook check (docs/runbooks.md): "SERVICE=path in DOCS_REPO,...", its schedule, and how many
    # incidents since a runbook's last change make it stale.
    runbooks: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    runbook_check_schedule: str = "quarterly mon 10:00"
    runbook_stale_incidents: int = Field(default=2, ge=1)
    # Service owners (docs/service-owners.md): "SERVICE=@team-handle or U0123,...", over PagerDuty's answer;
    # the digest lists the post-mortems published later than DOC_LATENCY_TARGET_HOURS after the resolution.
    service_owners: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    doc_latency_target_hours: int = Field(default=120, ge=1)

    @field_validator(
        "pagerduty_webhook_secrets",
        "postmortem_admins",
        "jira_labels",
        "channel_urgencies",
        "channel_priorities",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("retro_schedule", "digest_schedule", "docs_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        WeeklySchedule.parse(value)
        return value

    @field_validator("working_days")
    @classmethod
    def _working_days(cls, value: str) -> str:
        parse_days(value)
        return value

    @field_validator("runbook_check_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        QuarterlySchedule.parse(value) or WeeklySchedule.parse(value)
        return value

    @field_validator("runbooks", mode="before")
    @classmethod
    def _runbooks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = [entry.partition("=") for entry in _csv_parts(value)]
        if any(not sep or not service.strip() or not path.strip().strip("/") for service, sep, path in pairs):
            raise ValueError("expected SERVICE=path/of/runbook.md,... (paths in DOCS_REPO)")
        return {service.strip(): path.strip().strip("/") for service, _, path in pairs}

    @field_validator("service_channels", mode="before")
    @classmethod
    def _service_channels(cls, value: object) -> object:
        return _mapping(value, "SERVICE_ID=#channel or SERVICE_ID=C0123ABCD", lambda v: v.lstrip("#"))

    @field_validator("service_owners", mode="before")
    @classmethod
    def _service_owners(cls, value: object) -> object:
        return _mapping(value, "SERVICE=@team-handle or SERVICE=U0123ABCD", lambda v: v and check_owner(v))

    @field_validator("pagerduty_user_map", mode="before")
    @classmethod
    def _user_map(cls, value: object) -> object:
        mapping = _mapping(value, "PAGERDUTY_USER_ID=SLACK_USER_ID", lambda v: v)
        for slack_user in mapping.values() if isinstance(mapping, dict) else ():
            if not re.fullmatch(r"[UW][A-Z0-9]{2,}", slack_user):
                raise ValueError(f"{slack_user!r} is not a Slack user id (U0123ABCD)")
        return mapping

    @field_validator("pagerduty_api_url")
    @classmethod
    def _pagerduty_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://api.pagerduty.com")
        return value.rstrip("/")

    @field_validator("incident_channel_prefix")
    @classmethod
    def _channel_prefix(cls, value: str) -> str:
        # Slack channel names: lower-case letters, digits, hyphens and underscores.
        if not re.fullmatch(r"[a-z0-9_-]{0,20}", value):
            raise ValueError("use at most 20 lower-case letters, digits, '-' or '_' (for example inc-)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("action_item_tracker", mode="before")
    @classmethod
    def _tracker(cls, value: object) -> object:
        # An empty ACTION_ITEM_TRACKER= in .env means none, like leaving it out.
        return value.strip().lower() or None if isinstance(value, str) else value

    @field_validator("jira_labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        if any(re.search(r"\s", label) for label in value):
            raise ValueError("Jira labels cannot contain spaces (separate labels with commas)")
        return value

    @field_validator("jira_url", "github_api_url")
    @classmethod
    def _tracker_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://acme.atlassian.net")
        return value.rstrip("/") if value else value

    @field_validator("jira_project_key")
    @classmethod
    def _project_key(cls, value: str | None) -> str | None:
        # Jira project keys: an upper-case letter, then upper-case letters, digits or underscores.
        if value is not None and not re.fullmatch(r"[A-Z][A-Z0-9_]{0,19}", value):
            raise ValueError("must be a Jira project key such as OPS (upper-case letters and digits)")
        return value

    @field_validator("github_repository", "docs_github_repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
            raise ValueError("must be owner/name, e.g. acme/ops")
        return value

    @field_validator("docs_repo_dir")
    @classmethod
    def _docs_dir(cls, value: str) -> str:
        parts = [part for part in value.strip().strip("/").split("/") if part]
        if not parts or any(part in (".", "..") for part in parts):
            raise ValueError(
                "must be a directory inside the repository, such as postmortems/ or docs/postmortems/"
            )
        return "/".join(parts) + "/"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def retro(self) -> WeeklySchedule:
        return WeeklySchedule.parse(self.retro_schedule)

    @property
    def digest(self) -> WeeklySchedule:
        return WeeklySchedule.parse(self.digest_schedule)

    @property
    def working_weekdays(self) -> tuple[int, ...]:
        return parse_days(self.working_days)

    @property
    def runbook_check(self) -> QuarterlySchedule | WeeklySchedule:
        return QuarterlySchedule.parse(self.runbook_check_schedule) or WeeklySchedule.parse(
            self.runbook_check_schedule
        )

    @property
    def docs(self) -> WeeklySchedule:
        return WeeklySchedule.parse(self.docs_schedule)

    @property
    def docs_pull_repository(self) -> str | None:
        """owner/name of the docs repository on GitHub: DOCS_GITHUB_REPOSITORY, else from a GitHub DOCS_REPO
        (https://github.com/acme/devops-docs.git or git@github.com:acme/devops-docs.git)."""
        if self.docs_github_repository:
            return self.docs_github_repository
        match = re.fullmatch(
            r"(?:https://[^/]*github[^/]*/|git@[^:]*github[^:]*:)([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?",
            (self.docs_repo or "").strip(),
        )
        return match.group(1) if match else None

    @property
    def docs_web_dir(self) -> str | None:
        """Where the documents are once merged, on GitHub's web (`blob/HEAD` is the default branch):
        https://github.com/acme/devops-docs/blob/HEAD/postmortems/ (GitHub Enterprise: its host); None
        without a docs repository on GitHub."""
        repository = self.docs_pull_repository if self.docs_repo else None
        if repository is None:
            return None
        api = self.github_api_url.rstrip("/")
        web = "https://github.com" if api == "https://api.github.com" else api.removesuffix("/api/v3")
        return f"{web}/{repository}/blob/HEAD/{self.docs_repo_dir}"

    def require_docs(self) -> None:
        """The docs sync needs the repository, its owner/name on GitHub and a token."""
        missing = [name for name in ("DOCS_REPO", "GITHUB_TOKEN") if not getattr(self, name.lower())]
        if self.docs_repo and not self.docs_pull_repository:
            missing.append("DOCS_GITHUB_REPOSITORY (DOCS_REPO is not a GitHub URL)")
        if missing:
            raise ConfigError("The docs sync needs " + ", ".join(missing) + " (see docs/docs-repository.md).")

    @property
    def digest_target(self) -> str:
        return self.digest_channel or self.postmortems_channel

    def require_tracker(self) -> None:
        """The chosen tracker needs its settings; checked at start-up, so a gap shows before any publish."""
        needed = {
            "jira": ("JIRA_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_PROJECT_KEY"),
            "github": ("GITHUB_TOKEN", "GITHUB_REPOSITORY"),
        }.get(self.action_item_tracker or "", ())
        missing = [name for name in needed if not getattr(self, name.lower())]
        if missing:
            raise ConfigError(
                f"ACTION_ITEM_TRACKER={self.action_item_tracker} needs " + ", ".join(missing) + " (see the "
                "README's settings table)."
            )
        if self.action_item_tracker == "jira" and not self.jira_labels:
            raise ConfigError("JIRA_LABELS: give at least one label (the default is postmortem)")

    def require_slack(self) -> None:
        """Serving Slack needs credentials; the CLI's database commands do not."""
        required = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
        missing = [name for name in required if not getattr(self, name.lower())]
        if missing:
            raise ConfigError(
                "Missing setting(s): " + ", ".join(missing) + ". Set them in the environment or in .env "
                "(see the README's settings table)."
            )
        if not (self.slack_bot_token or "").startswith("xoxb-"):  # (a missing token was reported above)
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if self.slack_app_token is not None and not self.slack_app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp- (Socket Mode)")


def load_settings(**overrides: Any) -> Settings:  # raw values, as from the environment: pydantic checks them
    """Read settings, turning pydantic's report into one line per offending variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "?"
            # Never echo credentials back into logs.
            shown = "***" if any(word in name for word in ("TOKEN", "SECRET")) else repr(error.get("input"))
            lines.append(f"{name}: {error['msg']} (got {shown})")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(lines)) from None
