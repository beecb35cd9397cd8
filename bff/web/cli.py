"""Operator commands in the Flask CLI: ``flask --app wsgi credits show|grant|spend``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from .services import services

credits_cli = AppGroup("credits", help="Users' credits and the service's spending (days are UTC).")

_DAYS = click.option("--days", default=7, show_default=True, type=click.IntRange(min=1),
                     help="How many days back, today included (at most BFF_LEDGER_DAYS + 1).")


@credits_cli.command("show")
@click.argument("user")
@_DAYS
def show(user: str, days: int) -> None:
    """USER's credits today, and the ledger of the recent days that have entries.

    USER is the id /me reports (a signed-in user, or an app client such as key:ios)."""
    credits = services().credits
    history = credits.book.user_history(user, min(days, credits.book.ledger_days + 1))
    # The allowance the user had at their last reservation today (their plan's, if any).
    allowance = history[0]["allowance"] if history[0]["allowance"] is not None else credits.allowance(None)
    today = credits.book.summary(user, allowance=allowance)
    click.echo(f"{user} on {today['day']}: allowance {_credits(today['allowance'])} ({today['granted']} granted), "
               f"charged {today['charged']}, reserved {today['reserved']}, remaining {_credits(today['remaining'])}; "
               f"resets at {today['resets_at']}")
    for day in history:
        if day["entries"]:
            click.echo(f"{day['day']}: charged {day['charged']}, reserved {day['reserved']}, granted {day['granted']}")
        for entry in day["entries"]:
            task = f" task {entry['task']}" if entry["task"] else ""
            click.echo(f"  {entry['time']} {entry['kind']} {entry['credits']}{task} ({entry['reason']})")


@credits_cli.command("grant")
@click.argument("user")
@click.argument("credits", type=click.IntRange(min=1))
@click.option("--reason", default="granted by an operator", show_default=True, help="Recorded in the ledger.")
def grant(user: str, credits: int, reason: str) -> None:
    """Give USER CREDITS extra credits for today (UTC), recorded in the ledger."""
    book = services().credits.book
    book.grant(user, credits, reason)
    click.echo(f"granted {credits} credits to {user} for {book.summary(user, allowance=None)['day']}")


@credits_cli.command("spend")
@_DAYS
def spend(days: int) -> None:
    """The whole service's credits per day: reserved (in flight), charged and refunded."""
    credits = services().credits
    budget = credits.service_budget
    click.echo(f"daily budget: {_credits(budget)}")
    for day in credits.book.service_totals(min(days, credits.book.ledger_days + 1)):
        click.echo(f"{day['day']}: charged {day['charged']}, reserved {day['reserved']}, refunded {day['refunded']}")


def _credits(amount: int | None) -> str:
    return "unlimited" if amount is None else str(amount)
