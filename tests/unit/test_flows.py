"""The sans-I/O flows (deepinfra_magic/_flows.py), driven by hand: each test plays the
server, sending answers (or throwing errors) into the flow, with no I/O at all."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from deepinfra_magic._flows import (
    Flow,
    Sleep,
    arun_flow,
    catalog_flow,
    image_flow,
    key_check_flow,
    run_flow,
)
from deepinfra_magic._protocol import ApiRequest, RawResponse, image_request, key_check_request
from deepinfra_magic._routes import Routes
from deepinfra_magic.errors import (
    AuthenticationError,
    DeepInfraError,
    InvalidResponseError,
    ServerError,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
HOSTED = "https://cdn.example/fox.png"
DEEPINFRA = Routes.for_url("https://api.deepinfra.com")
GENERIC = Routes.for_url("http://127.0.0.1:8080/v1")


def _free(images: int, cost: float | None) -> None:
    """A charge that keeps no ledger: these tests are about the requests."""


def answer(payload: Any) -> RawResponse:
    return RawResponse(200, {"content-type": "application/json"}, json.dumps(payload).encode())


def test_an_image_answer_that_links_its_image_downloads_it_next() -> None:
    flow = image_flow(image_request("a fox", "m/flux", {}), "a fox", "m/flux", set(), _free)
    first = next(flow)
    assert first.path == "/v1/inference/m/flux" and first.json == {"prompt": "a fox"}
    download = flow.send(answer({"images": [HOSTED], "seed": 7}))
    assert download.path == HOSTED and not download.needs_key
    with pytest.raises(StopIteration) as done:
        flow.send(RawResponse(200, {"content-type": "image/png"}, PNG))
    result = done.value.value
    assert [(i.mime_type, i.url, i.seed) for i in result.images] == [("image/png", HOSTED, 7)]


def test_a_failed_download_names_the_url_and_what_to_do() -> None:
    flow = image_flow(image_request("a fox", "m/flux", {}), "a fox", "m/flux", set(), _free)
    next(flow)
    flow.send(answer({"images": [HOSTED]}))
    with pytest.raises(InvalidResponseError, match=r"fox\.png \(HTTP 503\); run the cell again"):
        flow.throw(ServerError("busy", status_code=503))


def test_the_key_check_asks_deepinfra_once_and_reads_the_outcome() -> None:
    def outcome(error: DeepInfraError | None) -> Any:
        flow = key_check_flow(DEEPINFRA)
        assert next(flow).path == "/v1/me/rate_limit"
        with pytest.raises(StopIteration) as done:
            flow.send(answer({})) if error is None else flow.throw(error)
        return done.value.value

    assert outcome(None) is True
    assert outcome(ServerError("down", status_code=500)) is None
    with pytest.raises(AuthenticationError):
        outcome(AuthenticationError("refused", status_code=401))


def test_another_server_cannot_tell_a_key_so_nothing_is_sent() -> None:
    sent: list[ApiRequest] = []
    assert run_flow(key_check_flow(GENERIC), sent.append) is None  # type: ignore[arg-type]
    assert sent == []


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_both_drivers_run_a_flow_the_same_way(flavour: str) -> None:
    listed = {"object": "list", "data": [{"id": "qwen3:8b", "object": "model"}]}
    sent: list[str] = []

    def send(request: ApiRequest) -> RawResponse:
        sent.append(request.path)
        return answer(listed)

    async def asend(request: ApiRequest) -> RawResponse:
        return send(request)

    flow = catalog_flow(GENERIC)
    if flavour == "sync":
        entries, replayed, recorded_at = run_flow(flow, send)
    else:
        entries, replayed, recorded_at = asyncio.run(arun_flow(flow, asend))
    assert sent == ["/models"] and [e["model_name"] for e in entries] == ["qwen3:8b"]
    assert (replayed, recorded_at) == (False, None)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_both_drivers_throw_a_failed_request_into_the_flow(flavour: str) -> None:
    def send(request: ApiRequest) -> RawResponse:
        raise AuthenticationError("refused", status_code=401)

    async def asend(request: ApiRequest) -> RawResponse:
        return send(request)

    flow = key_check_flow(DEEPINFRA)
    with pytest.raises(AuthenticationError):
        run_flow(flow, send) if flavour == "sync" else asyncio.run(arun_flow(flow, asend))


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_both_drivers_sleep_where_a_flow_says_and_run_its_finally_on_ctrl_c(flavour: str) -> None:
    seen: list[Any] = []

    def polling() -> Flow[str]:
        try:
            seen.append((yield Sleep(0)))  # a sleep is answered with None
            yield key_check_request()
            return "never"
        finally:
            seen.append("cleaned up")

    def send(request: ApiRequest) -> RawResponse:
        raise KeyboardInterrupt

    async def asend(request: ApiRequest) -> RawResponse:
        return send(request)

    with pytest.raises(KeyboardInterrupt):
        if flavour == "sync":
            run_flow(polling(), send)
        else:
            asyncio.run(arun_flow(polling(), asend))
    assert seen == [None, "cleaned up"]
