"""Settings from the environment (prefix DARI_), read once per process."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_var_dir() -> Path:
    return PROJECT_ROOT / "var"


class Settings(BaseSettings):
    """Everything an operator may change, with safe defaults for one machine."""

    model_config = SettingsConfigDict(env_prefix="DARI_", extra="ignore")

    var_dir: Path = Field(default_factory=_default_var_dir)
    database_url: str = ""
    secret_key: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str = ""
    # The address people reach Dari at (https://dari.example.org): every absolute URL
    # the server writes (calendar feeds) starts with it, never with the request's Host
    # header, which anyone can set. Empty: http://HOST:PORT of this process.
    public_base_url: str = ""
    # Addresses of the reverse proxies whose X-Forwarded-For / -Proto are believed
    # (comma-separated in the environment, e.g. DARI_TRUSTED_PROXIES='["10.0.0.2"]').
    # Empty: none, so a client cannot pick the address that login throttling counts.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Sessions end after this much inactivity (patient data on shared clinic PCs).
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    # Roles that must use two-factor sign-in (enrolment is forced at their next login).
    totp_required_roles: list[str] = Field(default_factory=lambda: ["specialist", "admin"])
    login_max_failures: int = 5
    login_window_minutes: int = 15
    default_timezone: str = "Asia/Seoul"
    default_locale: str = "ko"
    # Origins allowed to open the signaling WebSocket; empty means same host only.
    allowed_origins: list[str] = Field(default_factory=list)
    # Scheduling: "regional_first" puts the GP's own region's hub hospitals first,
    # "earliest" ranks every slot by time alone (see docs/scheduling.md).
    routing_policy: str = Field(default="regional_first", pattern="^(regional_first|earliest)$")
    # An unanswered urgent ring escalates to the national pool (and the regional hub's
    # administrators are alerted) after this long; a fraction for tests (0.1 = 6 s).
    urgent_escalate_minutes: float = Field(default=10, gt=0)
    # How often the app checks for rings to escalate and consults past their response
    # target (server.scheduling.urgent.escalation_task; 0 turns the background task off).
    urgent_check_seconds: float = 30
    # Longest slot-search window, in days (a year-long search is refused).
    slot_search_max_days: int = 31
    # --- signaling and calls (docs/signaling.md) ---
    # Broker URL (memory:// or redis://); empty means redis_url if set, else memory://.
    signaling_broker_url: str = ""
    # Key and channel prefix in that broker (several deployments on one Redis).
    signaling_broker_prefix: str = "dari:sig:"
    signaling_port: int = 8001
    # Direct links between signaling processes (signaling/links.py): where each listens
    # ("" turns them off; 0 = any free port) and the host the others dial it at.
    signaling_link_host: str = "127.0.0.1"
    signaling_link_port: int = 0
    signaling_link_advertise: str = ""
    signaling_max_peers: int = 4
    signaling_resume_seconds: float = 30.0
    signaling_heartbeat_seconds: float = 15.0
    signaling_rate: float = 50.0
    signaling_burst: float = 100.0
    join_token_seconds: int = 120
    guest_invite_minutes: int = 30
    notification_poll_seconds: float = 1.0
    echo_max_sessions: int = 2
    echo_max_seconds: float = 120.0
    # No public STUN by default: clinic networks may be closed; host candidates work on a LAN.
    stun_urls: list[str] = Field(default_factory=list)
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: str = ""
    turn_ttl_seconds: int = 3600
    # "relay" sends every call through TURN (a clinic whose firewall must see one
    # server, and the network lab); "all" lets ICE pick the shortest path.
    ice_transport_policy: str = Field(default="all", pattern="^(all|relay)$")
    # Consults: target time to the first specialist response, per urgency (minutes).
    consult_target_minutes_urgent: int = 30
    consult_target_minutes_soon: int = 24 * 60
    consult_target_minutes_routine: int = 72 * 60
    # Attachments: refused (413) beyond this size; stored content-addressed here.
    attachment_max_bytes: int = 20 * 1024 * 1024
    attachments_dir: Path | None = None
    # Shared notes: the longest note, and how long the update log is kept before
    # compaction folds it into the snapshot (longer than a login session may last,
    # so a client that can still sign in can always catch up).
    notes_max_chars: int = 200_000
    notes_log_retention_hours: int = 13
    # The audit chain's HMAC key (docs/security.md): empty derives it from the secret
    # key; either way it is never stored in the database.
    audit_key: str = ""
    # The append-only file of signed audit checkpoints; empty: var/audit-checkpoints.log.
    # Keep it (or ship it with syslog) where whoever can edit the database cannot.
    audit_checkpoints: Path | None = None
    audit_syslog: bool = False
    # --- triage assist (docs/assist.md) ---
    # Until this many completed consults of consenting organisations exist, the specialty
    # model also learns from the synthetic seed questions (and the page says so).
    assist_min_real_consults: int = 100
    # How often the app checks whether to retrain (0 turns the background task off), and
    # how many newly completed consults make it retrain.
    assist_retrain_minutes: int = 60
    assist_retrain_min_new: int = 10
    # --- operations (docs/operations.md) ---
    # Bearer token for /metrics; empty means the endpoint answers 404 (not exposed).
    metrics_token: str = ""
    log_level: str = Field(default="INFO", pattern="(?i)^(debug|info|warning|error)$")
    # Set in tests so the SQLite URL default does not point at the developer's var/.
    testing: bool = False

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.var_dir / 'dari.sqlite3'}"

    def public_url(self, path: str = "/") -> str:
        """An absolute URL for a path of this site, from configuration only."""
        base = self.public_base_url or f"http://{self.host}:{self.port}"
        return base.rstrip("/") + "/" + path.lstrip("/")

    def resolved_broker_url(self) -> str:
        return self.signaling_broker_url or self.redis_url or "memory://"

    def resolved_attachments_dir(self) -> Path:
        return self.attachments_dir or self.var_dir / "attachments"

    def resolved_audit_key(self) -> str:
        return self.audit_key or self.resolved_secret_key()

    def resolved_audit_checkpoints(self) -> Path:
        return self.audit_checkpoints or self.var_dir / "audit-checkpoints.log"

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated once and kept in var/ (0600)."""
        if self.secret_key:
            return self.secret_key
        return load_or_create_secret(self.var_dir / "secret_key")


def load_or_create_secret(path: Path) -> str:
    """Read the key file, creating it atomically with 0600 permissions if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting together agree on one key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
