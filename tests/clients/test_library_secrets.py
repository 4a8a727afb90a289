"""The API key never shows: not in a repr or str, an error message, a log record, or the
locals of a traceback that IPython's verbose mode prints.

The tests take the canary key from ``canary()`` or the environment, never by naming it on
a line that can fail, so that the test's own frame cannot put it in a traceback.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.ultratb import VerboseTB

from deepinfra_magic._config import Secret, resolve_key
from deepinfra_magic.client import AsyncDeepInfraClient, DeepInfraClient
from deepinfra_magic.errors import ConfigurationError, DeepInfraError
from deepinfra_magic.recording import Record
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, INFERENCE_PREFIX, FakeDeepInfra

pytestmark = pytest.mark.usefixtures("library_env")

MESSAGES = [{"role": "user", "content": "Hello"}]
IMAGE_PATH = INFERENCE_PREFIX + "black-forest-labs/FLUX-1-schnell"


def canary() -> str:
    """The key, without the name CANARY_KEY on the calling line."""
    return CANARY_KEY


def verbose_traceback(error: BaseException) -> str:
    """The traceback as IPython's Verbose mode prints it, with every frame's locals."""
    return VerboseTB(theme_name="nocolor", include_vars=True).text(
        type(error), error, error.__traceback__
    )


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY_KEY not in text
        assert CANARY_KEY[3:] not in text  # not even without its "sk-" prefix


@pytest.fixture
def keyed_env(monkeypatch: pytest.MonkeyPatch, fake_server: FakeDeepInfra) -> FakeDeepInfra:
    """The canary in DEEPINFRA_API_KEY and the fake server in DEEPINFRA_BASE_URL."""
    monkeypatch.setenv("DEEPINFRA_API_KEY", canary())
    monkeypatch.setenv("DEEPINFRA_BASE_URL", fake_server.api_url)
    return fake_server


# ---- reprs and strs -----------------------------------------------------------------------------


def test_reprs_and_strs_never_show_the_key(
    keyed_env: FakeDeepInfra, tmp_path: Path, library_env: Path
) -> None:
    keyed_env.image_style = "url"
    shown: list[Any] = [Secret(canary()), resolve_key(), Record(tmp_path)]
    with DeepInfraClient(canary(), record=tmp_path / "r.json") as client:
        stream = client.chat(MESSAGES)
        shown += [client, client._transport, client._transport._client.headers, stream]
        list(stream)
        shown += [stream, stream.result, stream.partial(interrupted=True)]
        images = client.generate_image("a cat")
        shown += [images, images.images[0], client.models(), vars(client)]
        shown += [vars(client._transport), client._transport.key()]

    async def run_async() -> None:
        async with AsyncDeepInfraClient() as aclient:
            astream = await aclient.chat(MESSAGES)
            shown.extend([aclient, aclient._transport, astream])
            [event async for event in astream]
            shown.extend([astream, astream.result, vars(aclient)])

    asyncio.run(run_async())
    for thing in shown:
        assert_no_canary(repr(thing), str(thing), f"{thing}", format(thing, ""))
    assert_no_canary(*(path.read_text() for path in tmp_path.iterdir() if path.is_file()))
    api_requests = [r for r in keyed_env.requests if not r.path.startswith("/files/")]
    assert all(r.headers["authorization"] == f"Bearer {canary()}" for r in api_requests)


def test_secret_is_masked_and_cannot_be_pickled_or_copied() -> None:
    secret = Secret(canary())
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('[redacted]')"
    assert secret.reveal() == canary()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        copy.deepcopy(secret)
    assert not hasattr(secret, "__dict__")


def test_clients_cannot_be_pickled_with_their_key(keyed_env: FakeDeepInfra) -> None:
    with DeepInfraClient() as client, pytest.raises(TypeError) as caught:
        pickle.dumps(client)
    assert_no_canary(str(caught.value))


# ---- errors from every fault --------------------------------------------------------------------


def chat(stream: bool) -> Callable[[DeepInfraClient], Any]:
    def run(client: DeepInfraClient) -> Any:
        if stream:
            return list(client.chat(MESSAGES))
        return client.chat(MESSAGES, stream=False)

    return run


def image(client: DeepInfraClient) -> Any:
    return client.generate_image("a cat")


# Faults whose answers echo the key as some servers and proxies do, and every other fault.
FAULTS: list[tuple[str, dict[str, Any], Callable[[DeepInfraClient], Any]]] = [
    ("401-echo", {"status": 401, "message": "Invalid key: {key}"}, chat(True)),
    ("401-echo-bearer", {"status": 401, "message": "Bad header Bearer {key}"}, chat(False)),
    ("402", {"status": 402}, chat(True)),
    ("403-echo-html", {"status": 403, "body_style": "html", "message": "key {key}"}, chat(False)),
    ("422-echo-list", {"status": 422, "body_style": "detail_list", "message": "{key}"}, chat(True)),
    ("429", {"status": 429, "headers": {"Retry-After": "0"}}, chat(False)),
    ("500-echo-text", {"status": 500, "body_style": "text", "message": "token={key}"}, chat(True)),
    ("502-html", {"status": 502, "body_style": "html"}, chat(False)),
    ("503-empty", {"status": 503, "body_style": "empty"}, chat(True)),
    ("disconnect", {"disconnect_after": 2}, chat(True)),
    ("malformed", {"malformed_after": 2}, chat(True)),
    ("error-event", {"error_event_after": 2}, chat(True)),
    ("slow-first-byte", {"first_byte_delay": 30}, chat(True)),
    ("stall", {"token_delay": 30}, chat(True)),
    ("invalid-base64", {"path": IMAGE_PATH, "image_fault": "invalid_base64"}, image),
    ("zero-images", {"path": IMAGE_PATH, "image_fault": "zero_images"}, image),
    ("url-404", {"path": IMAGE_PATH, "image_fault": "url_404"}, image),
    ("image-401-echo", {"path": IMAGE_PATH, "status": 401, "message": "no {key}"}, image),
]  # fmt: skip


def add_fault_with_key(server: FakeDeepInfra, fault: dict[str, Any]) -> None:
    """Queue the fault with the key put into its message here, out of the test's locals."""
    if "message" in fault:
        fault = {**fault, "message": fault["message"].format(key=canary())}
    server.add_fault(**fault)


@pytest.mark.parametrize(("fault", "call"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_errors_and_their_tracebacks_never_show_the_key(
    keyed_env: FakeDeepInfra, fault: dict[str, Any], call: Callable[[DeepInfraClient], Any]
) -> None:
    add_fault_with_key(keyed_env, fault)
    with DeepInfraClient(timeout=0.3, max_retries=0) as client:
        with pytest.raises(DeepInfraError) as caught:
            call(client)
        error = caught.value
        assert_no_canary(
            str(error),
            repr(error),
            repr(error.args),
            repr(vars(error)),
            verbose_traceback(error),
        )
    assert keyed_env.count("*") >= 1


def test_connection_errors_never_show_the_key(keyed_env: FakeDeepInfra) -> None:
    with DeepInfraClient(base_url="http://127.0.0.1:9", max_retries=0) as client:
        with pytest.raises(DeepInfraError) as caught:
            client.chat(MESSAGES, stream=False)
    assert_no_canary(str(caught.value), verbose_traceback(caught.value))


def test_async_errors_never_show_the_key(keyed_env: FakeDeepInfra) -> None:
    keyed_env.add_fault(status=401, message=f"Invalid key: {canary()}")
    keyed_env.add_fault(disconnect_after=1)

    async def run() -> list[BaseException]:
        errors: list[BaseException] = []
        async with AsyncDeepInfraClient(max_retries=0) as client:
            for _ in range(2):
                try:
                    [event async for event in await client.chat(MESSAGES)]
                except DeepInfraError as exc:
                    errors.append(exc)
        return errors

    errors = asyncio.run(run())
    assert len(errors) == 2
    for error in errors:
        assert_no_canary(str(error), repr(vars(error)), verbose_traceback(error))


@pytest.mark.parametrize(
    ("bad_key", "kwargs"),
    [
        (lambda: canary(), {"base_url": "not a url"}),
        (lambda: canary() + " pasted twice", {}),
        (lambda: canary() + "\u2019", {}),  # a curly quote from a web page
        (lambda: canary(), {"record": "{file}/inside-a-file.json"}),
    ],
    ids=["bad-base-url", "inner-space", "non-ascii", "unwritable-recording"],
)
def test_configuration_errors_with_a_key_argument_never_show_it(
    fake_server: FakeDeepInfra,
    tmp_path: Path,
    bad_key: Callable[[], str],
    kwargs: dict[str, Any],
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    kwargs = {k: v.format(file=a_file) if isinstance(v, str) else v for k, v in kwargs.items()}
    kwargs.setdefault("base_url", fake_server.api_url)
    with pytest.raises(ConfigurationError) as caught:
        DeepInfraClient(bad_key(), **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    assert_no_canary(message, verbose_traceback(caught.value))
    assert fake_server.count("*") == 0


def test_a_key_an_http_header_cannot_carry_is_refused_with_a_remedy(
    fake_server: FakeDeepInfra,
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DeepInfraClient("sk-abc\u00e9def", base_url=fake_server.api_url)
    assert "copy it again from https://deepinfra.com/dash/api_keys" in str(caught.value)


# ---- logs ---------------------------------------------------------------------------------------


def test_debug_logs_never_show_the_key(
    keyed_env: FakeDeepInfra, caplog: pytest.LogCaptureFixture
) -> None:
    keyed_env.add_fault(CHAT_PATH, status=503, headers={"Retry-After": "0"})
    with caplog.at_level(logging.DEBUG), DeepInfraClient() as client:
        list(client.chat(MESSAGES))
        client.models()
    assert caplog.records, "httpx and httpcore log at DEBUG level"
    assert_no_canary(caplog.text, *(repr(record.__dict__) for record in caplog.records))
