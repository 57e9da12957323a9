"""JSON text for stored card results, and back to the school client's typed results."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from school.card.models import AccountInfo, Transaction


def encode_account(info: AccountInfo) -> str:
    return json.dumps(
        {
            "student_id": info.student_id,
            "name": info.name,
            "card_number": info.card_number,
            "identity": info.identity,
            "department": info.department,
            "status": info.status,
            "balance": str(info.balance),
            "cells": list(info.cells),
        },
        ensure_ascii=False,
    )


def decode_account(text: str) -> AccountInfo:
    data: dict[str, Any] = json.loads(text)
    return AccountInfo(
        student_id=data["student_id"],
        name=data["name"],
        card_number=data["card_number"],
        identity=data["identity"],
        department=data["department"],
        status=data["status"],
        balance=Decimal(data["balance"]),
        cells=tuple(data["cells"]),
    )


def encode_transactions(rows: list[Transaction]) -> str:
    return json.dumps(
        [
            {
                "time": row.time.isoformat(),
                "way": row.way,
                "position": row.position,
                "amount": str(row.amount),
                "balance_after": str(row.balance_after),
            }
            for row in rows
        ],
        ensure_ascii=False,
    )


def decode_transactions(text: str) -> list[Transaction]:
    return [
        Transaction(
            time=datetime.fromisoformat(item["time"]),
            way=item["way"],
            position=item["position"],
            amount=Decimal(item["amount"]),
            balance_after=Decimal(item["balance_after"]),
        )
        for item in json.loads(text)
    ]
