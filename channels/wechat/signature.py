"""WeChat's signatures: SHA-1 of the sorted concatenation of their parts, checked in constant time.

The URL signature signs (token, timestamp, nonce); the message signature of the
encrypted modes signs (token, timestamp, nonce, Encrypt).
"""

from __future__ import annotations

import hashlib
import hmac


def sign(*parts: str) -> str:
    """The lowercase hex SHA-1 of parts sorted and joined, as WeChat computes it."""
    # surrogatepass: a part decoded from a malformed request still hashes (and fails).
    joined = "".join(sorted(parts)).encode("utf-8", "surrogatepass")
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 (WeChat's protocol fixes SHA-1)


def signature_matches(given: str, *parts: str) -> bool:
    """Whether given is the signature of parts (compared in constant time)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), sign(*parts).encode("ascii"))
