"""Refusals the API turns into a 4xx JSON body (never a 500)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": str(self), **self.extra}


def not_found(what: str, ident: object) -> DomainError:
    return DomainError(404, "not_found", f"{what} {ident} does not exist")
