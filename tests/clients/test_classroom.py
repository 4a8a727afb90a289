"""Classroom mode's library half (deepinfra_magic/classroom.py): its flows against the fake
server over HTTP (driven by run_flow/arun_flow and the real transports, as the clients will),
the seats files, the summary and the scope line, the models a notebook uses, the reading
of refusals, and a canary: no repr, str, table or error shows a whole token."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from deepinfra_magic._config import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_MODEL,
    RetryPolicy,
    Secret,
    Timeouts,
)
from deepinfra_magic._flows import arun_flow, run_flow
from deepinfra_magic._http import AsyncTransport, SyncTransport
from deepinfra_magic._protocol import ApiRequest, chat_request, image_request
from deepinfra_magic.classroom import (
    RefusalReason,
    Seat,
    TokenScope,
    api_keys_flow,
    check_model_allowed,
    choose_key_name,
    describe_scope,
    inspect_flow,
    key_usage_flow,
    looks_like_scoped_token,
    mint_flow,
    mint_request,
    mint_seats_flow,
    models_from_notebook,
    read_seats_csv,
    refusal_reason,
    scoped_token_error,
    seats_html,
    seats_table,
    token_claims,
    write_seats_csv,
    write_seats_html,
)
from deepinfra_magic.errors import (
    APIStatusError,
    AuthenticationError,
    DeepInfraError,
    DisallowedModelError,
    InsufficientCreditError,
    InvalidArgumentError,
    ModelNotAllowedError,
    TokenBudgetError,
    TokenExpiredError,
)
from tests.fake_deepinfra import CANARY_KEY, FakeDeepInfra
from tests.fake_deepinfra.scoped_jwt import REFUSAL_SHAPES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEXT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
SMALL_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"
OTHER_MODEL = "Qwen/Qwen2.5-72B-Instruct"
FLAT_IMAGE_MODEL = "stabilityai/sd3.5"  # $0.06 an image
NOW = datetime(2026, 12, 7, 14, 20, tzinfo=timezone.utc)
UNTIL = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)


def transport(server: FakeDeepInfra, key: str) -> SyncTransport:
    return SyncTransport(
        server.url, Secret(key), timeouts=Timeouts(), retry=RetryPolicy(max_retries=0)
    )


@pytest.fixture
def teacher(fake_server: FakeDeepInfra) -> Iterator[SyncTransport]:
    sender = transport(fake_server, CANARY_KEY)
    yield sender
    sender.close()


def mint_seats(teacher: SyncTransport, count: int = 2, **scope: object) -> list[Seat]:
    fields: dict[str, object] = {
        "models": [TEXT_MODEL, SMALL_MODEL],
        "expires_at": UNTIL,
        "dollars": 2.0,
        "now": datetime.now(timezone.utc),
        **scope,
    }
    return run_flow(mint_seats_flow(count, "auto", **fields), teacher.send)  # type: ignore[arg-type]


# --- flows over HTTP --------------------------------------------------------------------


def test_minted_seats_carry_their_scope_in_readable_claims(teacher: SyncTransport) -> None:
    seats = mint_seats(teacher, 3)
    assert [seat.number for seat in seats] == [1, 2, 3]
    assert len({seat.token for seat in seats}) == 3  # the same claims would be the same token
    for seat in seats:
        expected = TokenScope(
            (TEXT_MODEL, SMALL_MODEL), UNTIL - timedelta(seconds=seat.number - 1), 2.0
        )
        assert looks_like_scoped_token(seat.token)
        assert seat.scope == expected
        assert TokenScope.of_token(seat.token) == expected
        assert token_claims(seat.token) is not None


def test_inspect_gives_the_same_scope_as_the_claims(teacher: SyncTransport) -> None:
    seat = mint_seats(teacher, 1)[0]
    assert run_flow(inspect_flow(seat.token), teacher.send) == seat.scope


def test_the_async_transport_drives_the_same_flows(fake_server: FakeDeepInfra) -> None:
    async def mint_and_inspect() -> tuple[str, TokenScope]:
        sender = AsyncTransport(
            fake_server.url, Secret(CANARY_KEY), timeouts=Timeouts(), retry=RetryPolicy()
        )
        try:
            order = mint_request(
                "auto", models=None, expires_at=UNTIL, spending_limit=None, now=NOW
            )
            flow = mint_flow(order)
            token = await arun_flow(flow, sender.send)
            return token, await arun_flow(inspect_flow(token), sender.send)
        finally:
            await sender.aclose()

    token, scope = asyncio.run(mint_and_inspect())
    assert looks_like_scoped_token(token)
    assert scope == TokenScope(None, UNTIL, None)


def test_the_key_in_use_names_the_signing_key(
    fake_server: FakeDeepInfra, teacher: SyncTransport
) -> None:
    fake_server.configure(
        valid_keys=[CANARY_KEY, "sk-the-other-key-000"],
        key_names={CANARY_KEY: "classroom", "sk-the-other-key-000": "lab"},
    )
    keys = run_flow(api_keys_flow(lambda value: value == CANARY_KEY), teacher.send)
    assert {(key.name, key.current) for key in keys} == {("classroom", True), ("lab", False)}
    assert CANARY_KEY not in repr(keys)
    assert choose_key_name(keys) == "classroom"
    assert choose_key_name(keys, "lab") == "lab"
    nobody = [key.__class__(key.name, key.token_id, key.created_at, False) for key in keys]
    with pytest.raises(InvalidArgumentError, match="--key-name"):
        choose_key_name(nobody)


def test_the_signing_keys_usage_counts_its_tokens_spend(
    fake_server: FakeDeepInfra, teacher: SyncTransport
) -> None:
    seat = mint_seats(teacher, 1, models=None)[0]
    student = transport(fake_server, seat.token)
    student.send(image_request("a fox", FLAT_IMAGE_MODEL, {}))
    student.close()
    keys = run_flow(api_keys_flow(lambda value: value == CANARY_KEY), teacher.send)
    usage = run_flow(key_usage_flow(str(keys[0].token_id)), teacher.send)
    assert usage.total == pytest.approx(0.06)


def test_bad_mint_arguments_fail_before_any_request(
    fake_server: FakeDeepInfra, teacher: SyncTransport
) -> None:
    cases = [
        {"models": None, "expires_at": NOW - timedelta(minutes=1), "dollars": 1.0},
        {"models": None, "expires_at": NOW + timedelta(days=400), "dollars": 1.0},
        {"models": [], "expires_at": UNTIL, "dollars": 1.0},
        {"models": None, "expires_at": UNTIL, "dollars": 0.0},
        {"models": None, "expires_at": datetime(2030, 1, 1), "dollars": 1.0},  # no zone
    ]
    for case in cases:
        with pytest.raises(InvalidArgumentError):
            mint_seats(teacher, 1, now=NOW, **case)
    with pytest.raises(InvalidArgumentError, match="--seats"):
        mint_seats(teacher, 0)
    assert fake_server.count("/v1/scoped-jwt") == 0


# --- refusals -----------------------------------------------------------------------------


def chat(model: str) -> ApiRequest:
    messages = [{"role": "user", "content": "Hi"}]
    return chat_request(messages, model, stream=False, temperature=None, max_tokens=None, params={})


def refused(server: FakeDeepInfra, token: str, model: str) -> APIStatusError:
    student = transport(server, token)
    try:
        student.send(chat(model))
    except APIStatusError as error:
        return error
    finally:
        student.close()
    raise AssertionError("the request was not refused")


@pytest.mark.parametrize("shape", REFUSAL_SHAPES)
def test_each_refusal_shape_becomes_the_error_that_says_why(
    fake_server: FakeDeepInfra, teacher: SyncTransport, shape: str
) -> None:
    fake_server.configure(scoped_refusal=shape)
    seat = mint_seats(teacher, 1, models=[SMALL_MODEL], dollars=1e-9)[0]
    scope = seat.scope

    not_allowed = scoped_token_error(
        refused(fake_server, seat.token, OTHER_MODEL),
        scope=scope, model=OTHER_MODEL, spent=None, now=NOW,
    )  # fmt: skip
    assert isinstance(not_allowed, ModelNotAllowedError)
    assert not_allowed.allowed_models == [SMALL_MODEL] and not_allowed.model == OTHER_MODEL
    assert SMALL_MODEL in str(not_allowed)

    student = transport(fake_server, seat.token)
    student.send(chat(SMALL_MODEL))  # the first answer spends the cap
    student.close()
    spent = scoped_token_error(
        refused(fake_server, seat.token, SMALL_MODEL),
        scope=scope, model=SMALL_MODEL, spent=0.25, now=NOW,
    )  # fmt: skip
    assert isinstance(spent, TokenBudgetError) and isinstance(spent, InsufficientCreditError)
    assert spent.spent == 0.25 and spent.spending_limit == scope.spending_limit

    fake_server.configure(clock_offset=3 * 3600)
    expired = scoped_token_error(
        refused(fake_server, seat.token, SMALL_MODEL),
        scope=scope, model=SMALL_MODEL, spent=None, now=NOW,
    )  # fmt: skip
    assert isinstance(expired, TokenExpiredError) and expired.expires_at == UNTIL
    assert "expired" in str(expired)


def test_litellm_budget_words_give_the_figures() -> None:
    text = "Budget has been exceeded! Current cost: 0.2612, Max budget: 0.25"
    assert refusal_reason(text) is RefusalReason.BUDGET
    error = scoped_token_error(
        APIStatusError(f"Unexpected HTTP 400 ({text})", status_code=400),
        scope=None, model=None, spent=None, now=NOW,
    )  # fmt: skip
    assert isinstance(error, TokenBudgetError)
    assert (error.spent, error.spending_limit) == (0.2612, 0.25)
    assert "$0.26 of $0.25" in str(error)


def test_litellm_model_words_name_the_allowed_models() -> None:
    text = (
        "key not allowed to access model. This key can only access models=['gpt-4o-123', "
        "'small']. Tried to access gpt-4o"
    )
    error = scoped_token_error(
        APIStatusError(f"The server refused the key (401: {text})", status_code=401),
        scope=None, model="gpt-4o", spent=None, now=NOW,
    )  # fmt: skip
    assert isinstance(error, ModelNotAllowedError)
    assert error.allowed_models == ["gpt-4o-123", "small"]


@pytest.mark.parametrize(
    "text",
    [
        "Rate limit exceeded, retry later",
        "Virtual key is not allowed to call this route. Tried to call route: /v1/model/info",
        "Not authenticated",
        "Insufficient balance",
    ],
)
def test_words_of_other_refusals_name_no_reason(text: str) -> None:
    assert refusal_reason(text) is None


def test_other_refusals_are_left_as_they_are(fake_server: FakeDeepInfra) -> None:
    fake_server.configure(valid_keys=["sk-the-only-valid-key"])
    error = refused(fake_server, CANARY_KEY, SMALL_MODEL)
    assert isinstance(error, AuthenticationError)
    same = scoped_token_error(error, scope=None, model=SMALL_MODEL, spent=None, now=NOW)
    assert same is error


def test_a_model_outside_the_scope_fails_before_sending() -> None:
    scope = TokenScope((SMALL_MODEL,), NOW, 1.0)
    check_model_allowed(scope, SMALL_MODEL)
    check_model_allowed(TokenScope(), OTHER_MODEL)
    with pytest.raises(DisallowedModelError, match=SMALL_MODEL) as caught:
        check_model_allowed(scope, OTHER_MODEL)
    assert isinstance(caught.value, InvalidArgumentError)
    assert not isinstance(caught.value, APIStatusError)  # found before sending: never a status
    assert caught.value.status_code is None and caught.value.allowed_models == [SMALL_MODEL]


# --- the scope line -----------------------------------------------------------------------


def test_the_scope_line_names_models_expiry_and_cap() -> None:
    scope = TokenScope((TEXT_MODEL, SMALL_MODEL), NOW + timedelta(hours=2, minutes=10), 2.0)
    assert describe_scope(scope, NOW) == (
        f"Token for {TEXT_MODEL} and 1 more · expires 16:30 (2 h 10 min) · up to $2.00"
    )
    assert describe_scope(scope, NOW, budget=False) == (
        f"Token for {TEXT_MODEL} and 1 more · expires 16:30 (2 h 10 min)"
    )
    gone = TokenScope((SMALL_MODEL,), NOW - timedelta(minutes=5), None)
    assert describe_scope(gone, NOW) == (
        f"Token for {SMALL_MODEL} · expired 14:15 (5 min ago) · no spending limit"
    )
    later = TokenScope(None, NOW + timedelta(days=3), 0.5)
    assert (
        describe_scope(later, NOW)
        == "Token for any model · expires 10 Dec 14:20 (3 days) · up to $0.50"
    )


# --- seats ----------------------------------------------------------------------------------


def seats_for_files() -> list[Seat]:
    scope = TokenScope((TEXT_MODEL, SMALL_MODEL), UNTIL, 2.0)
    return [Seat(n, f"jwt:eyJhbGci.eyJzdWIi.signature-of-seat-{n}-WXYZ{n}", scope) for n in (1, 2)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_seats_file_is_0600_and_reads_back(tmp_path: Path) -> None:
    seats = seats_for_files()
    path = write_seats_csv(tmp_path / "seats.csv", seats)
    assert mode(path) == 0o600
    assert path.read_text().splitlines()[0] == "seat,token,models,expires_at,dollars"
    assert read_seats_csv(path) == seats


def test_an_existing_file_is_replaced_by_a_0600_one(tmp_path: Path) -> None:
    path = tmp_path / "seats.csv"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_seats_csv(path, seats_for_files())
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["seats.csv"]


def test_the_printable_page_is_0600_with_one_card_per_seat(tmp_path: Path) -> None:
    seats = seats_for_files()
    path = write_seats_html(tmp_path / "seats.html", seats, now=NOW)
    assert mode(path) == 0o600
    page = path.read_text()
    assert page.count('class="card"') == 2 and "%deepinfra_login" in page
    assert all(seat.token in page for seat in seats)
    assert seats_html(seats, now=NOW) == page


def test_seats_are_not_written_into_an_examples_folder(tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    folder.mkdir()
    with pytest.raises(InvalidArgumentError, match="examples"):
        write_seats_csv(folder / "seats.csv", seats_for_files())
    with pytest.raises(InvalidArgumentError, match="examples"):
        write_seats_html(folder / "seats.html", seats_for_files())
    assert list(folder.iterdir()) == []
    write_seats_csv(folder / "seats.csv", seats_for_files(), allow_examples=True)


def test_the_summary_shows_each_token_by_its_last_4_characters() -> None:
    seats = seats_for_files()
    table = seats_table(seats, now=NOW)
    assert "`…XYZ1`" in table and "`…XYZ2`" in table
    assert all(seat.token not in table for seat in seats)
    assert table.splitlines()[0] == "| Seat | Token | Models | Expires | Cap |"


def test_a_broken_seats_file_is_one_line_without_the_token(tmp_path: Path) -> None:
    token = seats_for_files()[0].token
    path = tmp_path / "seats.csv"
    path.write_text(f"seat,token,models,expires_at,dollars\none,{token},,,\n")
    with pytest.raises(InvalidArgumentError, match="line 2") as caught:
        read_seats_csv(path)
    assert token not in str(caught.value)
    path.write_text("seat,token\n1,x\n")
    with pytest.raises(InvalidArgumentError, match="missing column"):
        read_seats_csv(path)


# --- the models a notebook uses --------------------------------------------------------------


def test_models_from_the_shipped_notebooks() -> None:
    assert models_from_notebook(EXAMPLES / "quickstart.ipynb") == [
        DEFAULT_MODEL,
        DEFAULT_IMAGE_MODEL,
    ]
    assert models_from_notebook(EXAMPLES / "label_a_table.ipynb") == [DEFAULT_MODEL]
    assert models_from_notebook(EXAMPLES / "ask_about_your_plot.ipynb") == [
        "meta-llama/Llama-3.2-11B-Vision-Instruct"
    ]
    workshop = models_from_notebook(EXAMPLES / "workshop.ipynb")
    assert workshop[:3] == [DEFAULT_MODEL, DEFAULT_IMAGE_MODEL, "deepseek-ai/DeepSeek-R1"]
    assert "meta-llama/Llama-3.3-70B-Instruct-Trubo" in workshop  # its deliberate typo


def test_models_from_a_notebook_read_every_option_form(tmp_path: Path) -> None:
    cells = [
        "%%deepinfra --model=a/one\nHi",
        "%%deepinfra_map rows -m a/two -t 0\n{x}",
        '%config DeepInfraMagics.default_image_model = "img/three"',
        "%deepinfra_image a fox",
        "%deepinfra_image -ma/four a cat",
        "print('%%deepinfra -m not/a-magic')",
    ]
    notebook = {"cells": [{"cell_type": "code", "source": cell} for cell in cells]}
    path = tmp_path / "class.ipynb"
    path.write_text(json.dumps(notebook))
    assert models_from_notebook(path) == ["a/one", "a/two", "img/three", "a/four"]
    with pytest.raises(InvalidArgumentError, match="notebook"):
        models_from_notebook(tmp_path / "missing.ipynb")


# --- the canary -----------------------------------------------------------------------------


def test_no_repr_str_table_or_error_shows_a_whole_token(
    fake_server: FakeDeepInfra, teacher: SyncTransport, tmp_path: Path
) -> None:
    seat = mint_seats(teacher, 1, models=[SMALL_MODEL])[0]
    token, body = seat.token, seat.token.removeprefix("jwt:")
    shown: list[str] = [repr(seat), str(seat), repr([seat]), repr(seat.scope), seat.tail]
    shown += [seats_table([seat]), describe_scope(seat.scope, NOW)]
    errors: list[DeepInfraError] = []
    with pytest.raises(DisallowedModelError) as not_allowed:
        check_model_allowed(seat.scope, OTHER_MODEL)
    errors.append(not_allowed.value)
    outsider = transport(fake_server, "sk-not-the-signing-key")
    with pytest.raises(DeepInfraError) as inspected:
        run_flow(inspect_flow(token), outsider.send)
    outsider.close()
    errors.append(inspected.value)
    error = refused(fake_server, token, OTHER_MODEL)
    errors += [
        error,
        scoped_token_error(error, scope=seat.scope, model=OTHER_MODEL, spent=None, now=NOW),
    ]
    broken = tmp_path / "seats.csv"
    broken.write_text(f"seat,token,models,expires_at,dollars\n1,{token},,never,\n")
    with pytest.raises(InvalidArgumentError) as unreadable:
        read_seats_csv(broken)
    errors.append(unreadable.value)
    shown += [
        text for error in errors for text in (str(error), repr(error), *error._render_traceback_())
    ]
    for text in shown:
        assert token not in text and body not in text, text


def test_an_inspection_refused_as_a_missing_route_does_not_show_the_token(
    fake_server: FakeDeepInfra, teacher: SyncTransport
) -> None:
    seat = mint_seats(teacher, 1)[0]
    fake_server.add_fault(path="/v1/scoped-jwt", status=404, body_style="detail_str")
    with pytest.raises(DeepInfraError) as caught:  # the message names the URL it tried
        run_flow(inspect_flow(seat.token), teacher.send)
    assert "/v1/scoped-jwt" in str(caught.value)
    assert seat.token.removeprefix("jwt:") not in str(caught.value)


def test_a_scoped_token_is_not_sent_to_the_key_check(
    fake_server: FakeDeepInfra, teacher: SyncTransport
) -> None:
    from deepinfra_magic.client import DeepInfraClient

    token = mint_seats(teacher, 1)[0].token
    before = len(fake_server.requests)
    with DeepInfraClient(token, base_url=fake_server.api_url, recording=None) as client:
        assert client.validate_key() is None
        assert client.is_own_key(token) and not client.is_own_key(CANARY_KEY)
    assert len(fake_server.requests) == before
