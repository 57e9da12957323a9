"""The config section every school system's own section is built on (the shared toolkit).

A system's section (under `school:` in config.yaml) is one pydantic type that lives in
its package and is handed to its client as it is: the checks every client needs (an
http(s) URL that names a host, positive timeouts) are written here once.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SystemConfig(Section):
    """Where one school server is and how we talk to it; each section under `school:`
    starts with these keys."""

    base_url: str
    connect_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    total_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    user_agent: str = "jnufm/0.1 (+campus API server)"
    max_connections: Annotated[int, Field(ge=1)] = 32
    # Host header; null: the base URL's.
    host: str | None = None
    # Redirects followed within the system per request.
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 5
    # School requests at once, over every worker and host (the fair line, the
    # budget); `budget.<name>` in older config files.
    budget: Annotated[int, Field(ge=1, le=1000)] = 2

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        parts = urlsplit(value)
        if not parts.hostname or parts.username or parts.password or parts.query:
            raise ValueError("must name a host, without user, password or query")
        return value
