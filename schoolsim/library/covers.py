"""The simulated cover service: a small generated JPEG for about 60 % of ISBNs, 404 else.

Evidence (2013): `GET /index.php?client=libcode&isbn=<isbn>/cover` answered an image.
What it answered without a cover is a guess (404). `GET /covers/<isbn>.jpg` is a
convenience for looking at covers by hand. `POST /__sim/covers/drill
{"answer": "image" | "html" | "mislabelled" | "oversize"}` makes every found
cover answer as given: an HTML page (200, text/html), HTML labelled
image/jpeg, or a 600 KiB JPEG (drills for the client's checks, not evidence).
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal, cast, get_args

from PIL import Image, ImageDraw

from schoolsim.library.dataset import has_cover
from schoolsim.library.state import LibraryState, TruthHandler, calibrated
from schoolsim.overload import Mount, OverloadHandler, Rule, SystemState
from schoolsim.profiles import SimSettings

NAME = "covers"
PREFIX = "/covers/"
Answer = Literal["image", "html", "mislabelled", "oversize"]
_SIZE = (67, 97)
_CACHED = 256
_OVERSIZE = 600 * 1024
_ISBN = re.compile(r"(\d{9}[\dXx]|\d{13})")


class CoverState(LibraryState):
    """The cover service: which answer the drill asks for, and recent images."""

    def __init__(self, profile_name: str, settings: SimSettings) -> None:
        super().__init__(NAME, profile_name, settings, PREFIX)
        self.answer: Answer = "image"
        self.images: OrderedDict[str, bytes] = OrderedDict()

    def reset(self, data: Mapping[str, Any]) -> None:
        """Zero the counters and answer covers as images again."""
        super().reset(data)
        self.answer = "image"

    def image(self, isbn: str) -> bytes:
        """A cover for an ISBN: its colours from the ISBN (kept for the last few ISBNs)."""
        if isbn in self.images:
            self.images.move_to_end(isbn)
            return self.images[isbn]
        digest = hashlib.sha256(isbn.encode()).digest()
        picture = Image.new("RGB", _SIZE, (digest[0], digest[1], digest[2]))
        draw = ImageDraw.Draw(picture)
        draw.rectangle((6, 10, _SIZE[0] - 7, 40), fill=(digest[3], digest[4], digest[5]))
        draw.line((6, 60, _SIZE[0] - 7, 60), fill=(255, 255, 255), width=3)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=80)
        self.images[isbn] = out.getvalue()
        if len(self.images) > _CACHED:
            self.images.popitem(last=False)
        return self.images[isbn]


def _isbn(text: str) -> str | None:
    """The ISBN of a request ("9787111123456/cover" as 2013 sent it; hyphens allowed)."""
    raw = text.removesuffix("/cover").replace("-", "").strip()
    return raw.upper() if _ISBN.fullmatch(raw) else None


class CoverHandler(OverloadHandler):
    """GET /covers/index.php?client=libcode&isbn=<isbn>/cover (and /covers/<isbn>.jpg)."""

    state: CoverState

    def set_default_headers(self) -> None:
        self.set_header("Server", "Apache/2.2.3 (CentOS)")

    def page(self, status: int, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(f"<html><body><p>{text}</p></body></html>".encode())

    def get(self, name: str | None = None) -> None:
        isbn = _isbn(name if name is not None else self.get_query_argument("isbn", ""))
        if isbn is None or not has_cover(self.state.settings.seed, isbn):
            self.state.count("covers_missing")
            self.page(404, "no cover")
            return
        self.state.count("covers")
        answer = self.state.answer
        if answer == "html":
            self.page(200, "cover temporarily unavailable")
            return
        body = self.state.image(isbn)
        if answer == "mislabelled":
            body = b"<html><body>not an image</body></html>"
        elif answer == "oversize":
            body = body + b"\0" * _OVERSIZE
        self.set_header("Content-Type", "image/jpeg")
        self.finish(body)


class NotFoundHandler(CoverHandler):
    def get(self, name: str | None = None) -> None:
        self.page(404, "not found")


class DrillHandler(TruthHandler):
    """POST /__sim/covers/drill {"answer": ...}: how found covers are answered."""

    state: CoverState

    def post(self) -> None:
        data = self.body()
        if data is None:
            return
        answer = data.get("answer")
        if answer not in get_args(Answer):
            self.send({"error": f"answer must be one of {', '.join(get_args(Answer))}"}, 400)
            return
        self.state.answer = cast(Answer, answer)
        self.send({"ok": True, "answer": answer})


class HasCoverHandler(TruthHandler):
    """GET /__sim/covers/isbn/<isbn>: {"cover": bool}."""

    def get(self, isbn: str) -> None:
        found = _isbn(isbn)
        self.send({"cover": found is not None and has_cover(self.state.settings.seed, found)})


def routes(prefix: str, state: SystemState) -> list[Rule]:
    assert isinstance(state, CoverState)
    s: dict[str, Any] = {"state": state}
    p = re.escape(prefix)
    return [
        (rf"/__sim/{NAME}/drill", DrillHandler, s),
        (rf"/__sim/{NAME}/isbn/([0-9Xx-]+)", HasCoverHandler, s),
        (rf"{p}index\.php", CoverHandler, s),
        (rf"{p}([0-9Xx-]{{10,17}})\.jpg", CoverHandler, s),
        (rf"{p}.*", NotFoundHandler, s),
    ]


def mount(profile: str, settings: SimSettings) -> Mount:
    """The cover service under /covers/, with its own overload layer."""
    return Mount(NAME, PREFIX, CoverState(profile, calibrated(NAME, profile, settings)), routes)
