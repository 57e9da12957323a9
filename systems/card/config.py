"""The card center's config section (`school.card`), handed to its client as it is."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field

from school.config import Section, SystemConfig


class CardFreshness(Section):
    """How old a card answer may be, per kind, before we ask again (seconds)."""

    balance: Annotated[float, Field(ge=0)] = 60
    today: Annotated[float, Field(ge=0)] = 60
    history: Annotated[float, Field(ge=0)] = 600
    profile: Annotated[float, Field(ge=0)] = 86400


class CardCenterConfig(SystemConfig):
    """Where the card center is, how we talk to it and how long its answers stay fresh."""

    base_url: str = "http://127.0.0.1:8100"
    # The card center's clock is this many minutes slow (2013: 55).
    clock_offset_minutes: int = 55
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 50
    fresh_s: CardFreshness = CardFreshness()
    # Referer of the login requests and of each query's first page; null: the portal
    # page the 2013 client named, on the base URL's host and default port.
    referer: str | None = None
    # Self-submitting pages (the history's "please wait") followed at most.
    max_steps: Annotated[int, Field(ge=1, le=20)] = 4
    # The account page read to confirm a login answers an account query this soon
    # after it, instead of a second request.
    login_page_reuse_s: Annotated[float, Field(ge=0)] = 5.0

    @property
    def clock_offset(self) -> timedelta:
        return timedelta(minutes=self.clock_offset_minutes)
