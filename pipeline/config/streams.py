"""A camera's `stream:`: where the service pulls its pictures from (an RTSP stream, or an HTTP snapshot URL) and
how often. Credentials are never part of the YAML: the config names the environment variables that hold them,
so the config file can be shared, reviewed and committed, and `redact` keeps them out of every text we show."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCHEMES = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}


class StreamCredentialsError(ValueError):
    """An environment variable the stream's config names is not set."""


class StreamConfig(BaseModel):
    """A camera's live picture source; the service reads it on a worker thread of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: str = Field(
        title="URL",
        description="rtsp://host[:port]/path (an RTSP stream: H.264, H.265, MJPEG or MPEG-4) or http(s)://host/path (one JPEG or PNG per GET). "
        "No user:password in it: name the environment variables in username_env/password_env",
    )
    every_s: float = Field(
        2.0, gt=0, le=3600, validation_alias=AliasChoices("every_s", "every"), title="Sample every (s)",
        description="One picture every this many seconds goes through the detector and the engine (`every` is accepted too)",
    )
    username_env: str | None = Field(None, pattern=ENV_NAME, title="Username variable", description="Environment variable holding the user name")
    password_env: str | None = Field(None, pattern=ENV_NAME, title="Password variable", description="Environment variable holding the password")
    decode: Literal["auto", "keyframes", "all"] = Field(
        "auto", title="Decode",
        description="RTSP: `keyframes` decodes key frames only (cheap; a sample at most every key-frame interval), `all` decodes every frame "
        "(needed when key frames come less often than every_s), `auto` measures the key-frame interval and decodes key frames only when it is <= every_s",
    )
    transport: Literal["tcp", "udp"] = Field("tcp", title="RTSP transport", description="tcp (interleaved, survives NAT and loss) or udp")
    http_auth: Literal["basic", "digest"] = Field("basic", title="HTTP auth", description="How an HTTP snapshot URL is sent its credentials")
    timeout_s: float = Field(10.0, gt=0, le=120, title="Timeout (s)", description="Connecting, and waiting for data, longer than this is a dropped stream")
    backoff_s: float = Field(1.0, gt=0, le=600, title="First retry after (s)", description="Wait before the first reconnect; doubles on every failure in a row")
    backoff_max_s: float = Field(60.0, gt=0, le=3600, title="Longest retry wait (s)", description="The doubling stops here")
    offline_after_s: float = Field(
        300.0, gt=0, title="Offline after (s)",
        description="A stream down (or never up) this long is a camera-offline event in the ledger, closed when the stream returns",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v.strip())
        if parts.scheme.lower() not in SCHEMES:
            raise ValueError(f"stream url must start with rtsp://, rtsps://, http:// or https://, got {parts.scheme + '://' if parts.scheme else 'no scheme'}")
        if not parts.hostname:
            raise ValueError("stream url has no host")
        if parts.username is not None or parts.password is not None:
            # the message must not echo the secret it refuses
            raise ValueError(f"stream url {redact(v)} carries credentials: put them in environment variables and name those in username_env/password_env")
        return v.strip()

    @model_validator(mode="after")
    def _backoff(self) -> StreamConfig:
        if self.backoff_max_s < self.backoff_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_s ({self.backoff_s})")
        if self.password_env and not self.username_env:
            raise ValueError("password_env needs username_env (the user name goes with it)")
        return self

    @property
    def kind(self) -> Literal["rtsp", "http"]:
        return SCHEMES[urlsplit(self.url).scheme.lower()]  # type: ignore[return-value]

    def credentials(self, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """(user, password) from the environment, or None when the config names none. A named variable that is
        unset is an error (a camera that would be asked without its password fails as 401 much later and less
        clearly)."""
        if not self.username_env:
            return None
        env = os.environ if env is None else env
        missing = [n for n in (self.username_env, self.password_env) if n and n not in env]
        if missing:
            raise StreamCredentialsError(f"stream credentials: environment variable(s) {', '.join(missing)} not set")
        return env[self.username_env], env[self.password_env] if self.password_env else ""

    def open_url(self, env: Mapping[str, str] | None = None) -> str:
        """The URL with the credentials in it, as ffmpeg wants them for RTSP. Never log or show it: `redact`."""
        creds = self.credentials(env)
        if creds is None:
            return self.url
        parts = urlsplit(self.url)
        userinfo = quote(creds[0], safe="") + (":" + quote(creds[1], safe="") if creds[1] else "")
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s'\"]*@")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with any user:password@ of a URL in it replaced by ***@, and every secret string (a password, also
    URL-quoted) replaced by ***: for error messages of libraries that echo the URL they failed on."""
    out = _USERINFO.sub(r"\1***@", text)
    for s in sorted({x for s in secrets if s for x in (s, quote(s, safe=""))}, key=len, reverse=True):
        out = out.replace(s, "***")
    return out
