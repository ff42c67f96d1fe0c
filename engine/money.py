"""Money: exact Decimal dollars from every input (JSON, CSV, X12, warehouse tables), summed
exactly, and written as money: ``$1,234.50`` for people, ``"1234.50"`` in JSON.

Binary floats cannot hold most cent amounts (0.1 + 0.2 != 0.3), and a year of charges summed as
floats drifts; a billing team reconciles to the cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import Field, PlainSerializer

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# No claim line or remittance comes near a trillion dollars; bounding amounts keeps every sum
# and rounding inside Decimal's precision (an exponent like 1E+999999 would overflow it).
LIMIT = Decimal(10) ** 12


def cents(value: Decimal) -> Decimal:
    """The amount to the cent (half a cent rounds up, as a remittance does)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_money(value: Any) -> Decimal | None:
    """An amount from text or a number (None for blank); ValueError when it is not an amount."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)  # the float's shortest decimal form, not its binary expansion
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"'{value}' is not an amount") from None
    if not amount.is_finite() or abs(amount) >= LIMIT:
        raise ValueError(f"'{value}' is not an amount")
    return amount


def money_text(value: Decimal | None) -> str | None:
    """An amount as JSON carries it: a string with two decimals, so no reader turns it into a float."""
    return None if value is None else str(cents(value))


def show_money(value: Decimal | float | int | None) -> str:
    """An amount as people read it: $1,234.50, -$12.00."""
    if value is None:
        return "-"
    amount = cents(Decimal(value) if not isinstance(value, Decimal) else value)
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def json_default(value: Any) -> Any:
    """For json.dumps/orjson: Decimal amounts as money strings."""
    if isinstance(value, Decimal):
        return money_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# In models: read from a JSON number or string without a float in between, dumped as "1234.50".
Money = Annotated[Decimal, Field(allow_inf_nan=False, gt=-LIMIT, lt=LIMIT),
                  PlainSerializer(money_text, return_type=str, when_used="json")]
