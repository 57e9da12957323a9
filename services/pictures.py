"""Account pictures (2013's avatars and backgrounds): checked, then re-encoded as PNG.

Only PNG, JPEG and GIF pictures are taken, each side at most `accounts.max_image_side`
pixels (read from the header, before any pixel is decoded). What is kept is a new
PNG made from the decoded pixels alone (a GIF's first frame, a JPEG turned upright
by its EXIF orientation): no metadata, comment, colour profile or trailing bytes
of the upload survive, so a file that is also a script or an archive (a polyglot)
is not served back.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image, ImageOps

from services import codes
from services.errors import BadInput

FORMATS: Final = ("PNG", "JPEG", "GIF")
# Kept in base64 (a third more) in a MEDIUMTEXT of 16 MiB, and MariaDB's default
# max_allowed_packet is 16 MiB: a re-encoded picture must stay well below both.
MAX_STORED_BYTES: Final = 8 << 20


def clean_picture(data: bytes, max_side: int) -> bytes:
    """The picture as a new PNG. Raises BadInput: invalid_image (not a PNG, JPEG or GIF,
    or damaged), image_too_large (a side over max_side, or too detailed to store)."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            _check_size(image.size, max_side)
            image.load()
            upright = ImageOps.exif_transpose(image)
        _check_size(upright.size, max_side)
        mode = "RGBA" if _has_alpha(upright) else "RGB"
        pixels = upright.convert(mode)
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise _too_large(f"each side at most {max_side} pixels") from None
    except Exception:
        # Untrusted bytes: Pillow's decoders fail in many ways (OSError, SyntaxError,
        # struct.error, ...); each means a file we do not take.
        raise BadInput(codes.INVALID_IMAGE, "the file is not a PNG, JPEG or GIF picture") from None
    # A new image from the pixels alone: nothing of the upload's info travels with it.
    clean = Image.frombytes(mode, pixels.size, pixels.tobytes())
    out = io.BytesIO()
    clean.save(out, "PNG")
    png = out.getvalue()
    if len(png) > MAX_STORED_BYTES:
        raise _too_large("too detailed to store; send a smaller picture")
    return png


def _check_size(size: tuple[int, int], max_side: int) -> None:
    width, height = size
    if width > max_side or height > max_side:
        raise _too_large(f"{width}x{height} pixels; each side at most {max_side}")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _too_large(detail: str) -> BadInput:
    return BadInput(codes.IMAGE_TOO_LARGE, f"the picture is too large: {detail}")
