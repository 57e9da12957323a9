"""What a password check against the stored verifier costs; what a leaked table costs an attacker.

    python -m bench.verifier_cost [--rounds 20000]

Compares the keyed verifier we use (HMAC-SHA256 under the server's secret,
compared in constant time) with a slow unkeyed hash (scrypt, n=2**14), the
alternative for a database leak of 6-digit passwords.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time

from services.credentials import Credentials, make_verifier

PASSWORDS = 10**6  # every 6-digit card password


def per_call(fn: object, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    key = b"k" * 32
    creds = Credentials("2012052690", "052690")
    stored = make_verifier(key, "card", creds)
    hmac_s = per_call(
        lambda: hmac.compare_digest(make_verifier(key, "card", creds), stored), args.rounds
    )
    salt = b"2012052690"
    scrypt_s = per_call(
        lambda: hashlib.scrypt(b"052690", salt=salt, n=2**14, r=8, p=1, maxmem=64 * 2**20), 20
    )
    print(f"HMAC-SHA256 verifier check : {hmac_s * 1e6:8.2f} us per request")
    print(f"scrypt n=2^14 check        : {scrypt_s * 1e6:8.0f} us per request")
    print(f"ratio scrypt / HMAC        : {scrypt_s / hmac_s:8.0f}x")
    print("leaked table, one student, every 6-digit password, one core:")
    print("  HMAC without the key     : impossible (the key is not in the database)")
    print(f"  HMAC with the key        : {PASSWORDS * hmac_s:8.1f} s")
    print(f"  unkeyed scrypt           : {PASSWORDS * scrypt_s / 3600:8.1f} h")


if __name__ == "__main__":
    main()
