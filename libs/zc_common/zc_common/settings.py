"""Settings: one pydantic-settings model per service on a shared base, read from
``config.yml`` (path in ``ZC_CONFIG``) and overridden by ``ZC_*`` environment variables."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from zc_common.secrets import PLACEHOLDER_WORDS, weakness

CONFIG_ENV = "ZC_CONFIG"
HTTP_PORT = (
    "Port of the HTTP listener (/healthz, /readyz, /metrics). Each service has its own default: do not set it "
    "in a config.yml that several services share."
)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ZeroCloudSettings(BaseSettings):
    """What every service reads. Secrets and addresses of other systems have no default."""

    model_config = SettingsConfigDict(env_prefix="ZC_", extra="ignore", validate_default=True)

    log_level: LogLevel = Field(
        "INFO", description="Level of the JSON log lines written to stderr."
    )
    bus: Literal["rabbitmq", "memory"] = Field(
        "rabbitmq",
        description="`rabbitmq`, or `memory`: an in-process bus for every service in one process (the sandbox).",
    )
    amqp_url: str = Field(description="RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/")
    amqp_exchange: str = Field(
        "zerocloud", description="Topic exchange; queues are named '<exchange>.<service>'."
    )
    amqp_prefetch: int = Field(
        500, ge=1, le=10_000,
        description="Messages RabbitMQ hands a consumer before it acknowledges any (at least twice its batch size).",
    )
    aws_endpoint_url: str | None = Field(
        None, description="Send every AWS call here (a moto server in tests and the sandbox)."
    )
    aws_region: str = Field("us-east-1", description="Region for STS and account-level calls.")
    aws_max_attempts: int = Field(8, ge=1, le=20, description="Adaptive retry attempts per AWS call.")
    http_host: str = Field(
        "0.0.0.0",
        description="Address the HTTP listener binds to (health and metrics; for the api, its public listener: the "
        "REST API, the web UI and the mailed links).",
    )
    http_port: int = Field(8000, ge=1, le=65535, description=HTTP_PORT)

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://", "memory://")):
            raise ValueError("must start with amqp:// or amqps://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then config.yml.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = os.environ.get(CONFIG_ENV)
        if config_path:
            path = Path(config_path)
            if not path.is_file():
                raise SettingsError(f"{CONFIG_ENV}={config_path}: no such file")
            try:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            except (yaml.YAMLError, ValueError, TypeError) as error:
                # Broken YAML or not a mapping: one line naming the file, not a traceback.
                reason = str(error).splitlines()[0]
                raise SettingsError(
                    f"{CONFIG_ENV}={config_path}: cannot be read as a YAML mapping of settings: {reason}"
                ) from None
        return tuple(sources)


def _strong(value: str) -> str:
    reason = weakness(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _not_placeholder(value: str | None) -> str | None:
    if value is not None and any(word in value.lower() for word in PLACEHOLDER_WORDS):
        raise ValueError("looks like a placeholder: set the real value")
    return value


# A credential ZeroCloud itself checks: no placeholder, no guessable string, ≥ 128 bits.
StrongSecret = Annotated[str, AfterValidator(_strong)]
# A credential someone else issued (GitHub, the SMTP server): only never a placeholder.
IssuedSecret = Annotated[str | None, AfterValidator(_not_placeholder)]


class ApiCallerSettings(ZeroCloudSettings):
    """A service that talks to the api's internal listener with its own credential."""

    api_url: str = Field(
        description="Base URL of the api's internal listener (its ZC_INTERNAL_PORT), e.g. http://api:8010"
    )
    service_token: StrongSecret = Field(
        description="This service's own credential: the api's ZC_INGESTOR_TOKEN, ZC_NOTIFIER_TOKEN or "
        "ZC_REAPER_TOKEN, whichever names this service (it allows only what this service does)."
    )


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class ApiSettings(ZeroCloudSettings):
    database_url: str = Field(
        description="PostgreSQL URL, e.g. postgresql://zerocloud@127.0.0.1:5432/zerocloud"
    )
    ingestor_token: StrongSecret = Field(
        description="The ingestor's credential (its ZC_SERVICE_TOKEN): reads cloud accounts and known instances."
    )
    notifier_token: StrongSecret = Field(
        description="The notifier's credential (its ZC_SERVICE_TOKEN): mints action and people links, records "
        "what was mailed."
    )
    reaper_token: StrongSecret = Field(
        description="The reaper's credential (its ZC_SERVICE_TOKEN): reads cloud accounts, claims leases, "
        "reports what it did."
    )
    internal_host: str = Field(
        "0.0.0.0",
        description="Address the internal listener binds to: /internal/v1 (the services' routes), /metrics and "
        "the full OpenAPI. Never expose it to the public.",
    )
    internal_port: int = Field(
        8010, ge=1, le=65535, description="Port of the internal listener (the public one is ZC_HTTP_PORT)."
    )
    bootstrap_admin_email: str | None = Field(
        None, description="Email of the admin that bootstrap_admin_token creates (admin@localhost when unset)."
    )
    bootstrap_admin_token: StrongSecret | None = Field(
        None, description="An admin token created at start when set."
    )
    allow_supplied_external_id: bool = Field(
        False, description="Accept a caller-chosen external ID (confused-deputy risk)."
    )
    event_queue_arn: str | None = Field(
        None, pattern=r"^arn:aws(?:-cn|-us-gov)?:sqs:[a-z0-9-]+:\d{12}:[\w-]{1,80}$",
        description="ZeroCloud's event queue (QueueArn of zerocloud-account.yaml): verify subscribes it to each "
        "topic it binds. Unset: the operator subscribes the queue by hand.",
    )
    verify_event_wait_seconds: float = Field(
        20.0, ge=0.5, le=25,
        description="With ZC_EVENT_QUEUE_ARN, verify sends a test event through each subscribed topic and waits this "
        "long for the ingestor to see it (checks events_flow:<region>).",
    )
    max_cloudevent_bytes: int = Field(
        256 * 1024, ge=1024, le=4 * 1024 * 1024, description="The largest event POST /api/v1/cloudevents accepts."
    )
    ingest_batch_size: int = Field(
        500, ge=1, le=5000, description="ResourceChange messages the api ingests per transaction."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The address people open: the base of mailed links and of GitHub sign-in; https makes cookies Secure.",
    )
    action_token_ttl_seconds: int = Field(
        3 * 24 * 3600, ge=1, description="How long a mailed renew / shut-down link works (seconds)."
    )
    github_client_id: str | None = Field(
        None, description="OAuth app client ID for 'Sign in with GitHub' (the web UI's only sign-in)."
    )
    github_client_secret: IssuedSecret = Field(None, description="OAuth app client secret; set with github_client_id.")
    github_authorize_url: str = Field(
        "https://github.com/login/oauth/authorize", description="Where the browser is sent to sign in."
    )
    github_token_url: str = Field(
        "https://github.com/login/oauth/access_token", description="Where the api exchanges the code for a token."
    )
    github_api_url: str = Field(
        "https://api.github.com", description="GitHub's REST API (GitHub Enterprise: https://HOST/api/v3)."
    )
    session_ttl_seconds: int = Field(
        12 * 3600, ge=60, description="How long a web sign-in lasts without activity (seconds)."
    )
    invitation_ttl_seconds: int = Field(7 * 24 * 3600, ge=60, description="How long an invitation link works.")
    email_confirmation_ttl_seconds: int = Field(
        2 * 24 * 3600, ge=60, description="How long an email-confirmation link works."
    )
    past_lease_digest_hour: int = Field(
        8, ge=0, le=23,
        description="From this UTC hour each day, every account's admins are mailed the instances still running "
        "past their lease (protection, the blast-radius cap), with what each costs a day; each owner their own.",
    )
    past_lease_digest_check_seconds: float = Field(
        600.0, gt=0, le=86400, description="How often the api looks whether a day's list of them is due."
    )
    sweep_stale_seconds: int = Field(
        900, ge=60, le=24 * 3600,
        description="A sweep an admin asked for (POST /api/v1/sweeps) that the ingestor has not finished after this "
        "many seconds no longer holds back a new one for its cloud account and region: it is marked failed.",
    )
    sandbox_mailbox_dir: str | None = Field(
        None, description="Sandbox only: a folder of .eml files the web UI shows as the mailbox page."
    )

    @property
    def github_login_enabled(self) -> bool:
        return bool(self.github_client_id and self.github_client_secret)

    @property
    def cookie_secure(self) -> bool:
        """Cookies carry Secure whenever the UI is served over https (always, in production)."""
        return self.public_url.startswith("https://")

    @field_validator("reaper_token")
    @classmethod
    def _one_credential_per_service(cls, value: str, info: ValidationInfo) -> str:
        # Validated after the other two (declaration order), so the error names this one.
        if value in (info.data.get("ingestor_token"), info.data.get("notifier_token")) or (
            info.data.get("ingestor_token") is not None
            and info.data.get("ingestor_token") == info.data.get("notifier_token")
        ):
            raise ValueError("the ingestor, notifier and reaper tokens must all differ: each allows only its own work")
        return value

    @field_validator("internal_port")
    @classmethod
    def _two_listeners(cls, value: int, info: ValidationInfo) -> int:
        if value == info.data.get("http_port"):
            raise ValueError("must differ from ZC_HTTP_PORT: the internal listener is never the public one")
        return value

    @field_validator("github_client_secret")
    @classmethod
    def _github_app_is_complete(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("github_client_id") is None) != (value is None):
            raise ValueError("set together with github_client_id: both or neither")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (PostgreSQL is the only database)")
        return value


class MigrationSettings(ZeroCloudSettings):
    """What ``zerocloud-api migrate`` reads: the database, and none of the api's
    credentials (the one-shot migration job needs no secret but the database's)."""

    database_url: str = Field(
        description="PostgreSQL URL, e.g. postgresql://zerocloud@127.0.0.1:5432/zerocloud"
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (PostgreSQL is the only database)")
        return value


class IngestorSettings(ApiCallerSettings):
    http_port: int = Field(8001, ge=1, le=65535, description=HTTP_PORT)
    event_queue_urls: CommaList = Field(
        default_factory=list, description="SQS queue URLs to long-poll, comma-separated."
    )
    event_dead_letter_queue_url: str | None = Field(
        None, description="Where unusable events go with their reason; else deleted and counted."
    )
    poll_wait_seconds: int = Field(20, ge=0, le=20, description="SQS long-polling wait per receive (0 to 20 seconds).")
    pollers_per_queue: int = Field(
        4, ge=1, le=32,
        description="Receive loops per event queue, each following its own batch of up to 10: one loop follows a "
        "batch at a time, about 200 events/s, so a busier queue waits behind it.",
    )
    visibility_timeout: int = Field(
        60, ge=5, le=43_200,
        description="Seconds a received SQS message stays hidden while it is followed; a stopping ingestor waits "
        "up to this long (at most the shutdown grace) for the batch in hand.",
    )
    max_event_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest event the ingestor parses; bigger ones are unusable."
    )
    account_cache_seconds: float = Field(
        60.0, ge=0, description="How long cloud account records read from the api are reused."
    )
    sweep_concurrency: int = Field(
        8, ge=1, le=256,
        description="(cloud account, region) pairs a sweep lists at once, across all accounts: enough to hide AWS's "
        "latency, few enough to stay clear of account-wide throttling. Each account's role is assumed once per "
        "credential lifetime whatever its regions.",
    )

    _split_queues = field_validator("event_queue_urls", mode="before")(_split_list)


class SchedulerSettings(ZeroCloudSettings):
    http_port: int = Field(8002, ge=1, le=65535, description=HTTP_PORT)
    database_url: str = Field(
        description="PostgreSQL URL for the scheduler's own tables (scheduler_*); may be the api's database"
    )
    sweep_interval: float = Field(
        600.0, ge=0, description="Seconds between SweepRequested jobs; 0 turns them off."
    )
    fire_batch_size: int = Field(1000, ge=1, le=10_000, description="Due timers fired per transaction.")
    lease_batch_size: int = Field(
        500, ge=1, le=5000, description="LeaseChanged messages stored per transaction."
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (PostgreSQL is the only database)")
        return value


class NotifierSettings(ApiCallerSettings):
    """Mail (SMTP or SES) and an optional Slack-compatible webhook, one digest per
    recipient per ``digest_window``."""

    http_port: int = Field(8003, ge=1, le=65535, description=HTTP_PORT)
    delivery: Literal["smtp", "ses"] = Field("smtp", description="How mail leaves: an SMTP server or Amazon SES.")
    smtp_host: str = Field("localhost", description="The SMTP server mail is handed to (delivery smtp).")
    smtp_port: int = Field(
        25, ge=1, le=65535, description="Its port: 25, 587 with smtp_starttls, or 1025 for a local catcher."
    )
    smtp_username: str | None = Field(None, description="AUTH login; set together with smtp_password.")
    smtp_password: IssuedSecret = Field(None, description="AUTH password; set together with smtp_username.")
    smtp_starttls: bool = Field(False, description="Require STARTTLS before AUTH and sending.")
    smtp_ca_file: str | None = Field(
        None, description="CA bundle to verify the SMTP server's certificate (default: the system's)."
    )
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds for each SMTP connect and command.")
    mail_from: str = Field("ZeroCloud <zerocloud@localhost>", description="The From of every mail.")
    digest_window: float = Field(
        30.0, ge=0, description="Seconds the bus gathers messages into one batch: one digest per recipient."
    )
    webhook_url: str | None = Field(
        None,
        description="Also post every account's lease notices here (Slack-compatible JSON), without renew or "
        "shut-down links: an operator's channel.",
    )
    account_webhooks: bool = Field(
        True, description="Post each account's lease notices to the webhook its admins set (without links)."
    )
    send_attempts: int = Field(6, ge=1, le=20, description="Tries per mail inside one handling, with backoff.")
    send_retry_delay: float = Field(1.0, ge=0, description="First backoff between tries; doubles each time.")
    redelivery_attempts: int = Field(
        10, ge=1, description="Times the bus hands a failing message back before dead-lettering it."
    )
    redelivery_delay: float = Field(
        5.0, ge=0, description="First delay before the bus hands a failed message back; doubles, capped at 60s."
    )

    @field_validator("smtp_password")
    @classmethod
    def _smtp_login_is_complete(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Validated after smtp_username (declaration order), so the error names the password.
        if (info.data.get("smtp_username") is None) != (value is None):
            raise ValueError("set together with smtp_username: both or neither")
        return value


class ReaperSettings(ApiCallerSettings):
    http_port: int = Field(8004, ge=1, le=65535, description=HTTP_PORT)
    batch_size: int = Field(
        1000, ge=1, le=10_000, description="LeaseExpired messages claimed, checked and acted on together."
    )
    batch_wait: float = Field(
        2.0, ge=0, le=30,
        description="Seconds a batch waits to fill up: leases a sweep made over a few seconds expire over as many, "
        "and one wait long enough for them makes one StopInstances call of them, not several.",
    )
    batch_quiet: float = Field(
        0.5, gt=0, le=30,
        description="A batch closes sooner once no expiry came for this many seconds: leases that expired "
        "together are reaped as soon as the burst is over, not batch_wait after it began.",
    )
    batches_in_flight: int = Field(
        4, ge=1, le=16,
        description="Batches worked on at once, each acknowledged on its own: an account whose AWS is slow or "
        "throttling holds back only its own batch, not the leases of other accounts behind it. Each batch "
        "works on up to 8 account/region groups at once; up to batch_size × (this + 1) messages are held.",
    )
    aws_attempts: int = Field(
        5, ge=1, le=20,
        description="Tries of one AWS call on throttling or a 5xx (on top of the client's own retries) "
        "before the batch goes back to the bus.",
    )
    aws_retry_delay: float = Field(
        1.0, ge=0, le=60, description="Seconds before the second try; doubles each try, capped at 20 s."
    )
    account_cache_seconds: float = Field(60.0, ge=0, description="How long cloud account records are reused.")
    message_attempts: int = Field(
        10, ge=1, le=100, description="Deliveries of one LeaseExpired before it is dead-lettered."
    )
    message_retry_delay: float = Field(
        2.0, ge=0.01, le=60, description="Seconds before a failed LeaseExpired is retried; doubles, capped at 60 s."
    )


class SettingsError(Exception):
    """The configuration cannot be used; the message names the setting."""


S = TypeVar("S", bound=ZeroCloudSettings)


def describe_errors(cls: type[ZeroCloudSettings], error: ValidationError) -> list[str]:
    """One line per bad setting, named as the operator writes it (ZC_NAME / config key)."""
    lines = []
    for item in error.errors():
        key = str(item["loc"][0]) if item["loc"] else "?"
        env = f"ZC_{key.upper()}"
        if item["type"] == "missing":
            lines.append(f"setting {env} is missing: set it in the environment or as '{key}' in config.yml")
        else:
            lines.append(f"setting {env} is invalid: {item['msg']}")
    return lines


def load_settings(cls: type[S], service: str, **overrides: Any) -> S:
    """Build the settings or stop the process with one line per bad setting."""
    try:
        return cls(**overrides)
    except ValidationError as error:
        for line in describe_errors(cls, error):
            print(f"zerocloud-{service}: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    except SettingsError as error:
        print(f"zerocloud-{service}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
