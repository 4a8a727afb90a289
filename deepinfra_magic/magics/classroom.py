"""The classroom family: ``%deepinfra_classroom create`` (a capped, scoped token per seat,
minted with the teacher's key) and ``%deepinfra_classroom status`` (what each seat's token
allows, and what the signing key spent).

Rules kept here:

* The options are declared right above the magic and read through it.
* The teacher's key is used here only, for minting and status; a seat's token is never
  shown whole (the summary shows its last 4 characters), and goes only to the seats file
  and the printable page, both 0600 (``classroom``). A recording of these requests has
  every token and key value scrubbed (``recording``).
* Scoped tokens are DeepInfra's: on another server, one line says so before any request.
* ``classroom`` (the library half) loads on the first use, not at ``%load_ext``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import magics_class

from .._config import DEFAULT_SEATS_FILE
from ..errors import ConfigurationError, DeepInfraError, InvalidArgumentError
from .arguments import argument, bounded_float, bounded_int, magic_arguments, parse_argstring
from .base import Family, line_magic, one_line_errors

if TYPE_CHECKING:
    from ..classroom import Seat, TokenScope
    from ..client import DeepInfraClient

__all__ = ["ClassroomMagics", "parse_until"]


@magics_class
class ClassroomMagics(Family):
    """``%deepinfra_classroom``: seats for a class, and how they are doing."""

    @line_magic
    @one_line_errors
    @magic_arguments(
        "%deepinfra_classroom",
        "Mint one capped, scoped DeepInfra token per seat (create), or show the seats (status).",
    )
    @argument("action", choices=("create", "status"))
    @argument("seats_file", nargs="?", metavar="SEATS_CSV", help="status: the seats file")
    @argument("--seats", type=bounded_int(1), help="how many seats (tokens)")
    @argument("--dollars", type=bounded_float(0.0), help="spending cap of each seat, in USD")
    @argument("--hours", type=bounded_float(0.0), exclusive="expiry", help="valid this long")
    @argument("--until", metavar="TIME", exclusive="expiry", help="valid until HH:MM or ISO time")
    @argument("--models", metavar="M1,M2", exclusive="models", help="the models allowed")
    @argument(
        "--models-from-notebook",
        metavar="PATH",
        exclusive="models",
        help="allow the models a notebook uses",
    )
    @argument("--key-name", metavar="NAME", help="the API key that signs the tokens")
    @argument("--out", metavar="PATH", help=f"seats file (default {DEFAULT_SEATS_FILE})")
    def deepinfra_classroom(self, line: str) -> None:
        """``create --seats N --dollars D (--hours H | --until TIME) [--models M1,M2 |
        --models-from-notebook PATH] [--key-name NAME] [--out seats.csv]`` mints a token
        per seat and writes the seats file (0600) and a printable page beside it (.html);
        ``status [seats.csv]`` shows what each token allows and the signing key's spend."""
        args = parse_argstring(self.deepinfra_classroom, line)
        client = self._teacher_client()
        if args.action == "create":
            self._create(client, args)
        else:
            if args.seats_file and args.out:
                raise UsageError("%deepinfra_classroom status takes the seats file, not --out.")
            self._status(client, args.seats_file or args.out or DEFAULT_SEATS_FILE)

    def _teacher_client(self) -> DeepInfraClient:
        """The session's client, if it can sign tokens: DeepInfra's API, a plain key."""
        client = self.session.ready_client()
        if client.routes.generic:
            raise ConfigurationError(
                f"%deepinfra_classroom needs DeepInfra's API (its scoped tokens); "
                f"{client.base_url} is another server (a LiteLLM proxy makes its own keys)."
            )
        if self.session.scope is not None:
            raise ConfigurationError(
                "%deepinfra_classroom needs the teacher's API key, not a classroom token; "
                "run %deepinfra_login --clear, then set the account key."
            )
        return client

    def _create(self, client: DeepInfraClient, args: Any) -> None:
        """Mint the seats, write them, and show the summary (tokens by their last 4)."""
        from .. import classroom

        if args.seats is None or args.dollars is None or (args.hours is None and not args.until):
            raise UsageError(
                "%deepinfra_classroom create needs --seats N, --dollars D and --hours H or "
                "--until TIME."
            )
        now = datetime.now().astimezone()
        expires = now + timedelta(hours=args.hours) if args.hours else parse_until(args.until, now)
        if args.models_from_notebook:
            models: list[str] | None = classroom.models_from_notebook(args.models_from_notebook)
        elif args.models:
            models = [name.strip() for name in args.models.split(",") if name.strip()]
        else:
            models = None
        key_name = args.key_name or self._key_name(client)
        seats = client.run(
            classroom.mint_seats_flow(
                args.seats, key_name, models=models, expires_at=expires, dollars=args.dollars,
                now=now, relative=bool(args.hours),
            )
        )  # fmt: skip
        csv_path = classroom.write_seats_csv(Path(args.out or DEFAULT_SEATS_FILE), seats)
        page = classroom.write_seats_html(csv_path.with_suffix(".html"), seats, now=now)
        table = classroom.seats_table(seats, now)
        plural = "s" if len(seats) != 1 else ""
        note = (
            f"{len(seats)} seat{plural} signed by key '{key_name}'. Wrote {csv_path.name} and "
            f"{page.name} (both 0600; in {csv_path.parent}): print the page, one card per "
            "seat; each student runs %deepinfra_login and pastes their token."
        )
        self.show(f"{table}\n\n{note}", f"{table}\n\n{note}".replace("`", ""))

    def _key_name(self, client: DeepInfraClient) -> str:
        """The name of the key in use, from the account's key list; a one-line error
        asking for --key-name otherwise."""
        from ..classroom import api_keys_flow, choose_key_name

        try:
            keys = client.run(api_keys_flow(client.is_own_key))
        except DeepInfraError as exc:
            raise InvalidArgumentError(
                f"Which API key signs the tokens? The key list was not available ({exc}); "
                "pass --key-name NAME."
            ) from None
        return choose_key_name(keys)

    def _status(self, client: DeepInfraClient, path: str) -> None:
        """Per seat, what ``GET /v1/scoped-jwt`` says; then the signing key's spend, or a
        one-line note where the API does not give it."""
        from ..classroom import inspect_flow, read_seats_csv

        seats = read_seats_csv(path)
        now = datetime.now().astimezone()
        rows = ["| Seat | Token | Models | Expires | Cap |", "|---:|---|---|---|---:|"]
        for seat in seats:
            try:
                rows.append(_status_row(seat, client.run(inspect_flow(seat.token)), now))
            except DeepInfraError as exc:
                rows.append(f"| {seat.number} | `{seat.tail}` | ⚠ {_cell(str(exc))} | | |")
        notes = [self._key_spend(client)]
        markdown = "\n".join(rows) + "\n\n" + "\n\n".join(notes)
        self.show(markdown, markdown.replace("`", ""))

    def _key_spend(self, client: DeepInfraClient) -> str:
        """The signing key's spend this month (``/payment/usage``), or why it is not shown."""
        from ..classroom import api_keys_flow, key_usage_flow

        try:
            keys = client.run(api_keys_flow(client.is_own_key))
            own = [key for key in keys if key.current] or (keys if len(keys) == 1 else [])
            if not own or not own[0].token_id:
                return "Key spend: not available (the API did not say which key is in use)."
            usage = client.run(key_usage_flow(own[0].token_id))
        except DeepInfraError as exc:
            return f"Key spend: not available ({exc})."
        return (
            f"Key '{own[0].name}' spent ${usage.total:,.2f} this month, every seat included "
            "(the API does not split it by seat; each student's %deepinfra_usage shows theirs)."
        )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _status_row(seat: Seat, scope: TokenScope, now: datetime) -> str:
    """One seat as the API describes its token."""
    from ..classroom import seats_table

    return seats_table([dataclasses.replace(seat, scope=scope)], now).splitlines()[-1]


def parse_until(text: str, now: datetime) -> datetime:
    """``--until``: ``HH:MM`` (today, local time) or an ISO date-time (local if no zone);
    a one-line error when unreadable or not in the future."""
    text = text.strip()
    try:
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(part) for part in text.split(":"))
            moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.astimezone()
    except ValueError:
        raise InvalidArgumentError(
            f"--until {text!r}: expected HH:MM (today) or an ISO time like 2026-12-07T16:30."
        ) from None
    if moment <= now:
        raise InvalidArgumentError(f"--until {text}: that is not in the future.")
    return moment
