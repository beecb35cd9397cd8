"""Credits: what tasks cost, and who may spend how much per UTC day (no Flask here).

``pricing`` prices a task; ``book`` reserves credits before a provider call and settles
or refunds them exactly once; ``plans`` picks a user's daily allowance from token claims.
"""

from .book import (
    CREDITS_EXHAUSTED,
    PROVIDER_OUTCOME_UNKNOWN,
    SERVICE_BUDGET_EXHAUSTED,
    WRITE_CONFLICT,
    CreditBook,
    Reservation,
    ReserveResult,
    charged_credits,
)
from .plans import allowance_for
from .pricing import CONVERT_MODEL, PriceTable, default_prices, price_of

__all__ = [
    "CONVERT_MODEL",
    "CREDITS_EXHAUSTED",
    "PROVIDER_OUTCOME_UNKNOWN",
    "SERVICE_BUDGET_EXHAUSTED",
    "WRITE_CONFLICT",
    "CreditBook",
    "PriceTable",
    "Reservation",
    "ReserveResult",
    "allowance_for",
    "charged_credits",
    "default_prices",
    "price_of",
]
