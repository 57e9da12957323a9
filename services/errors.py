"""Errors raised by the service layer (school errors pass through from school.errors).

ServiceError
└── BadInput        input that can never succeed: 400 (or 401 when credentials are missing)
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the service layer's own errors."""


class BadInput(ServiceError):
    """A parameter is missing or malformed; code is stable and machine-readable."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
