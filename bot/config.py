"""Settings from the environment and a `.env` file (SPEC.md section 5)."""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError
from bot.i18n import Later, _

__all__ = [
    "CHANNEL_NAMES",
    "LICENSE_WARNING",
    "Settings",
    "load_settings",
    "salvage_settings",
    "unknown_variables",
]

log = logging.getLogger("stockbot")

CHANNEL_NAMES = ("rakuten", "yahoo", "amazon", "shopify")
LICENSE_WARNING = timedelta(days=14)  # how long before its expiry the Rakuten key is flagged
# A STOCKBOT_ name set in a .env line, `export` or not (pydantic-settings reads names in any case).
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?(stockbot_\w+)\s*=", re.IGNORECASE)
# https://docs.google.com/spreadsheets/d/<key>/edit#gid=0: the key is what follows /d/.
_SHEET_URL = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")


class Settings(BaseSettings):
    """Every STOCKBOT_* variable; secrets are `SecretStr` so they never print."""

    model_config = SettingsConfigDict(
        env_prefix="STOCKBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    sheet_id: str = ""
    google_credentials: Path | None = None
    sheets_api_url: str = "https://sheets.googleapis.com"
    interval_seconds: int = Field(300, ge=10)
    state_path: Path = Path("stockbot.sqlite3")
    timezone: str = "Asia/Tokyo"
    channels: Annotated[tuple[str, ...], NoDecode] = ()
    language: Literal["auto", "en", "ja"] = "auto"  # SPEC.md section 2, "Language"

    rakuten_service_secret: SecretStr | None = None
    rakuten_license_key: SecretStr | None = None
    rakuten_api_url: str = "https://api.rms.rakuten.co.jp"
    rakuten_license_expires: date | None = None  # optional: warn before the key expires

    yahoo_seller_id: str = ""
    yahoo_client_id: str = ""
    yahoo_client_secret: SecretStr | None = None
    yahoo_refresh_token: SecretStr | None = None
    yahoo_public_key_file: Path | None = None
    yahoo_public_key_version: str = ""
    yahoo_api_url: str = "https://circus.shopping.yahooapis.jp"
    yahoo_token_url: str = "https://auth.login.yahoo.co.jp/yconnect/v2/token"

    amazon_seller_id: str = ""
    amazon_marketplace_id: str = "A1VC38T7YXB528"
    amazon_client_id: str = ""
    amazon_client_secret: SecretStr | None = None
    amazon_refresh_token: SecretStr | None = None
    amazon_api_url: str = "https://sellingpartnerapi-fe.amazon.com"
    amazon_token_url: str = "https://api.amazon.com/auth/o2/token"

    shopify_shop: str = ""
    shopify_access_token: SecretStr | None = None
    shopify_location_id: str = ""
    shopify_api_version: str = "2026-04"
    shopify_api_url: str = ""

    # Alerts and the health check (SPEC.md section 5). URLs are secrets: a webhook URL lets
    # anyone post to the channel, an SMTP URL carries the password.
    alert_webhook_url: SecretStr | None = None
    alert_email_to: str = ""
    smtp_url: SecretStr | None = None
    healthcheck_url: SecretStr | None = None

    @field_validator("sheet_id", mode="before")
    @classmethod
    def _key_from_url(cls, value: object) -> object:
        """Accept the spreadsheet's whole URL as pasted from the browser, not only its key."""
        if isinstance(value, str):
            match = _SHEET_URL.search(value)
            return match.group(1) if match else value.strip()
        return value

    @field_validator("language", mode="before")
    @classmethod
    def _fold_language(cls, value: object) -> object:
        """Accept `JA` or ` ja ` as typed."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            names = [part.strip().lower() for part in value.split(",") if part.strip()]
            unknown = [n for n in names if n not in CHANNEL_NAMES]
            if unknown:
                raise ValueError(
                    f"unknown marketplace {', '.join(unknown)}; use {', '.join(CHANNEL_NAMES)}"
                )
            return tuple(dict.fromkeys(names))
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str], **override: Any) -> Settings:
        """Settings from STOCKBOT_* variables given as a mapping (no .env file, no os.environ).

        For the demo and tests, which point the bot at stand-ins: `override` takes field
        names, e.g. `rakuten_license_key="wrong"`.
        """
        values: dict[str, Any] = {
            k.removeprefix("STOCKBOT_").lower(): v
            for k, v in env.items()
            if k.startswith("STOCKBOT_")
        }
        return cls(_env_file=None, **{**values, **override})

    def require(self, *names: str, purpose: str = "") -> None:
        """Raise `ConfigError` naming every listed setting that is empty or only blanks."""
        missing = ", ".join(f"STOCKBOT_{n.upper()}" for n in names if _blank(getattr(self, n)))
        if missing:
            # Rendered late (`Later`): the stop is written in the sheet's language.
            if purpose:
                raise ConfigError(
                    Later(
                        lambda: _("set {names} to use {purpose} (see .env.example)").format(
                            names=missing, purpose=purpose
                        )
                    )
                )
            raise ConfigError(
                Later(lambda: _("set {names} (see .env.example)").format(names=missing))
            )


def _blank(value: object) -> bool:
    """Whether a setting holds nothing usable (secrets included, without revealing them)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or str(value).strip() in ("", ".")


def unknown_variables(
    environ: Mapping[str, str] = os.environ, env_file: Path = Path(".env")
) -> list[str]:
    """A line for each STOCKBOT_ variable set here or in `env_file` that no setting reads.

    Settings ignore unknown names (a stockbot of another version may share the file), so a
    misspelled one would leave its setting at the default without a word: say so, with the
    closest setting's name.
    """
    names = {k.upper() for k in environ if k.upper().startswith("STOCKBOT_")}
    try:
        lines = env_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    names |= {m.group(1).upper() for line in lines if (m := _ENV_LINE.match(line))}
    known = [name.upper() for name in Settings.model_fields]
    said = []
    for name in sorted(names - {f"STOCKBOT_{k}" for k in known}):
        # Matched without the prefix every name shares, or anything would look near.
        near = difflib.get_close_matches(name.removeprefix("STOCKBOT_"), known, n=1, cutoff=0.6)
        hint = f"; did you mean STOCKBOT_{near[0]}?" if near else " (see .env.example)"
        said.append(f"{name} is set but is not a stockbot setting{hint}")
    return said


def load_settings() -> Settings:
    """Read the settings, turning validation errors into a `ConfigError` that names the variable.

    A STOCKBOT_ variable no setting reads is logged as a warning (`unknown_variables`).
    """
    for line in unknown_variables():
        log.warning("%s", line)
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"STOCKBOT_{'_'.join(str(p) for p in err['loc']).upper()}: "
            + str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix, not for staff
            for err in exc.errors()
        )
        raise ConfigError(
            Later(lambda: _("configuration is invalid: {problems}").format(problems=problems))
        ) from None


def salvage_settings() -> Settings | None:
    """The settings with every invalid variable at its default; None when even that fails.

    For a stop on an invalid setting (SPEC.md section 5): the alerts, the health check and the
    sheet need only their own variables, which may well be right, to tell staff about it.
    """
    try:
        return Settings()
    except ValidationError as exc:
        invalid = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    fields = Settings.model_fields
    defaults = {
        name: fields[name].get_default(call_default_factory=True)
        for name in invalid
        if name in fields
    }
    try:
        return Settings(**defaults)
    except ValidationError:
        return None
