"""Record a session against the fake server, then replay it with no key and no network.

Replay must give back the same texts and images, visibly labelled, at the recorded pace
(or instantly), and explain precisely when a request was never recorded.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from deepinfra_magic.catalog import CATALOG_CACHE
from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.errors import ConfigurationError, ModelNotFoundError, ReplayError, StreamError
from deepinfra_magic.images import ImageResult
from deepinfra_magic.types import ChatResult, ContentDelta
from tests.fake_deepinfra import CANARY_KEY, CHAT_PATH, FakeDeepInfra

pytestmark = pytest.mark.usefixtures("library_env")

CLOSED_URL = (
    "http://127.0.0.1:9/v1/openai"  # nothing listens there: replay must not need the network
)
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
STREAMED = [{"role": "user", "content": "Stream me a haiku"}]
PLAIN = [{"role": "user", "content": "Answer in one go"}]
TWICE = [{"role": "user", "content": "Same question twice"}]
TOKEN_DELAY = 0.03


@dataclass
class Session:
    """What the recorded session returned, to compare the replay with."""

    path: Path
    model_names: list[str]
    streamed_deltas: list[str]
    streamed: ChatResult
    plain: ChatResult
    twice: list[str]
    inline_images: ImageResult
    hosted_images: ImageResult
    not_found: str


MakeClient = Callable[..., DeepInfraClient]


def chat_text(client: DeepInfraClient, messages: list[dict[str, str]]) -> str:
    *_, result = client.chat(messages)
    assert isinstance(result, ChatResult)
    return result.text


def record(server: FakeDeepInfra, path: Path) -> Session:
    server.add_fault(token_delay=TOKEN_DELAY)  # paces the first stream only, to keep it quick
    server.script_reply("Autumn moonlight—\na worm digs silently\ninto the chestnut.")
    server.script_reply("First answer.", match="Same question twice")
    server.script_reply("Second answer.", match="Same question twice")
    with DeepInfraClient(CANARY_KEY, base_url=server.api_url, record=path) as client:
        names = [m.name for m in client.models().models]
        stream = client.chat(STREAMED)
        deltas = [event.text for event in stream if isinstance(event, ContentDelta)]
        assert stream.result is not None
        plain = client.chat(PLAIN, stream=False)
        twice = [chat_text(client, TWICE), chat_text(client, TWICE)]
        inline = client.generate_image("a lighthouse", n=2, seed=7)
        server.image_style = "url"
        hosted = client.generate_image("a harbour", seed=9)
        with pytest.raises(ModelNotFoundError) as caught:
            client.chat(STREAMED, "meta-llama/Llama-3.3-70B", stream=False)
    assert server.count("/files/*") == 1
    return Session(
        path, names, deltas, stream.result, plain, twice, inline, hosted, str(caught.value)
    )


@pytest.fixture(scope="module")
def recording_server() -> Iterator[FakeDeepInfra]:
    """A server of this module's own: the session is recorded once, for all the tests."""
    with FakeDeepInfra() as server:
        yield server


@pytest.fixture(scope="module")
def recorded_session(
    recording_server: FakeDeepInfra, tmp_path_factory: pytest.TempPathFactory
) -> Session:
    folder = tmp_path_factory.mktemp("recording")
    with pytest.MonkeyPatch.context() as monkeypatch:  # as the library_env fixture does
        for name in ("DEEPINFRA_API_KEY", "DEEPINFRA_API_TOKEN", "DEEPINFRA_BASE_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(folder / "xdg-cache"))
        CATALOG_CACHE.clear()
        try:
            return record(recording_server, folder / "session.json")
        finally:
            CATALOG_CACHE.clear()


@pytest.fixture
def session(recorded_session: Session, recording_server: FakeDeepInfra, tmp_path: Path) -> Session:
    """The recorded session, its file copied for this test; the server's log is cleared."""
    recording_server.wait_streams_closed(timeout=5)
    recording_server.reset()
    copy = tmp_path / recorded_session.path.name
    shutil.copyfile(recorded_session.path, copy)
    return replace(recorded_session, path=copy)


def replay_client(
    session: Session, speed: float = 0, cls: MakeClient = DeepInfraClient, **kwargs: Any
) -> DeepInfraClient:
    return cls(base_url=CLOSED_URL, replay=session.path, replay_speed=speed, **kwargs)


def test_replay_gives_back_the_session_without_key_or_network(
    session: Session, recording_server: FakeDeepInfra, client_class: MakeClient
) -> None:
    with replay_client(session, cls=client_class) as client:
        assert not client.has_key
        catalog = client.models()
        assert [m.name for m in catalog.models] == session.model_names
        assert catalog.source == "recording"

        stream = client.chat(STREAMED)
        deltas = [event.text for event in stream if isinstance(event, ContentDelta)]
        assert deltas == session.streamed_deltas
        result = stream.result
        assert result is not None and result.replayed and result.complete
        assert result.text == session.streamed.text
        assert result.usage == session.streamed.usage
        assert result.finish_reason == session.streamed.finish_reason

        plain = client.chat(PLAIN, stream=False)
        assert plain.text == session.plain.text and plain.replayed

        for recorded, prompt, kwargs in (
            (session.inline_images, "a lighthouse", {"n": 2, "seed": 7}),
            (session.hosted_images, "a harbour", {"seed": 9}),
        ):
            images = client.generate_image(prompt, **kwargs)
            assert images.replayed
            assert [(i.data, i.mime_type, i.seed) for i in images] == [
                (i.data, i.mime_type, i.seed) for i in recorded
            ]
        with pytest.raises(ModelNotFoundError) as caught:
            client.chat(STREAMED, "meta-llama/Llama-3.3-70B", stream=False)
        assert str(caught.value) == session.not_found  # close matches from the recording
    assert recording_server.count("*") == 0


def test_identical_requests_are_answered_in_recorded_order(session: Session) -> None:
    with replay_client(session) as client:
        assert [chat_text(client, TWICE), chat_text(client, TWICE)] == session.twice
        assert session.twice == ["First answer.", "Second answer."]


def test_replay_at_speed_one_keeps_the_recorded_pace(
    session: Session, client_class: MakeClient
) -> None:
    data = json.loads(session.path.read_text(encoding="utf-8"))
    [streamed] = [
        ex
        for ex in data["exchanges"]
        if ex["request"]["path"] == CHAT_PATH
        and ex["request"]["json"]["messages"] == STREAMED
        and ex["request"]["json"]["stream"]
    ]
    recorded_delay = sum(delay for delay, _ in streamed["response"]["chunks"][1:])
    chunks = len(streamed["response"]["chunks"])
    assert recorded_delay >= TOKEN_DELAY * (chunks - 2)  # the server paused between events
    with replay_client(session, speed=1, cls=client_class) as client:
        started = time.perf_counter()
        assert chat_text(client, STREAMED) == session.streamed.text
        assert time.perf_counter() - started >= recorded_delay
        assert client.chat(PLAIN, stream=False).text == session.plain.text  # waits too


def test_a_request_that_was_not_recorded_names_the_closest_one(session: Session) -> None:
    with replay_client(session) as client:
        with pytest.raises(ReplayError) as caught:
            client.chat(PLAIN, stream=False, temperature=0.2)
        message = str(caught.value)
        assert "\n" not in message
        assert "No recorded answer for POST /v1/openai/chat/completions" in message
        assert "last message 'Answer in one go'" in message and "session.json" in message
        assert "differs in temperature (recorded 0.7, now 0.2)" in message
        assert "Re-record with %deepinfra_record" in message

        with pytest.raises(ReplayError) as caught:
            list(client.chat([{"role": "user", "content": "Stream me a sonnet"}]))
        assert "messages[0] (recorded 'Stream me a haiku', now 'Stream me a sonnet')" in str(
            caught.value
        )

        with pytest.raises(ReplayError, match="No recorded answer for POST /v1/inference/x/y"):
            client.generate_image("a lighthouse", "x/y")


def test_the_recording_holds_no_key_and_no_header(session: Session) -> None:
    text = session.path.read_text(encoding="utf-8")
    assert CANARY_KEY not in text
    lowered = text.lower()
    assert "authorization" not in lowered and "bearer" not in lowered
    assert "user-agent" not in lowered
    data = json.loads(text)
    assert data["format"] == "deepinfra-magic-recording"
    assert all(set(ex["request"]) == {"method", "path", "json"} for ex in data["exchanges"])


def test_interrupted_and_broken_streams_are_not_recorded(
    fake_server: FakeDeepInfra, tmp_path: Path, client_class: MakeClient
) -> None:
    path = tmp_path / "partial.json"
    fake_server.configure(reply_tokens=50, token_delay=0.005)
    fake_server.add_fault(disconnect_after=3, times=1)
    closed_early = [{"role": "user", "content": "closed early"}]
    broken = [{"role": "user", "content": "broken"}]
    with client_class(CANARY_KEY, base_url=fake_server.api_url, record=path) as client:
        with pytest.raises(StreamError):
            list(client.chat(broken))
        with client.chat(closed_early) as stream:
            for event in stream:
                if isinstance(event, ContentDelta):
                    break
        complete = chat_text(client, PLAIN)
    assert fake_server.wait_for_disconnect(timeout=10)
    data = json.loads(path.read_text(encoding="utf-8"))
    recorded = [ex["request"]["json"]["messages"] for ex in data["exchanges"]]
    assert recorded == [PLAIN]
    with client_class(base_url=CLOSED_URL, replay=path, replay_speed=0) as client:
        assert chat_text(client, PLAIN) == complete
        with pytest.raises(ReplayError):
            list(client.chat(closed_early))


def test_replay_can_be_switched_on_by_environment(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY", str(session.path))
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY_SPEED", "0")
    with DeepInfraClient(base_url=CLOSED_URL) as client:
        assert client.replaying and "replaying session.json" in repr(client)
        assert client.chat(PLAIN, stream=False).text == session.plain.text


def test_a_missing_or_foreign_recording_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist: check the path"):
        DeepInfraClient(replay=tmp_path / "nope.json")
    other = tmp_path / "other.json"
    other.write_text('{"some": "json"}', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="is not a deepinfra-magic recording"):
        DeepInfraClient(replay=other)


def test_prompts_that_look_like_secrets_still_replay(
    fake_server: FakeDeepInfra, tmp_path: Path, client_class: MakeClient
) -> None:
    path = tmp_path / "lookalikes.json"
    lookalike = [{"role": "user", "content": "Why does token=abcdefghijklmnop0123 fail?"}]
    with_key = [{"role": "user", "content": f"Is {CANARY_KEY} a valid key?"}]
    with client_class(CANARY_KEY, base_url=fake_server.api_url, record=path) as client:
        recorded = client.chat(lookalike, stream=False).text
        client.chat(with_key, stream=False)
    text = path.read_text(encoding="utf-8")
    assert CANARY_KEY not in text  # the real key is scrubbed even from a prompt
    assert "token=abcdefghijklmnop0123" in text  # but look-alikes in requests are kept
    with client_class(base_url=CLOSED_URL, replay=path, replay_speed=0) as client:
        assert client.chat(lookalike, stream=False).text == recorded


def test_a_mismatch_shows_where_two_long_prompts_differ(session: Session) -> None:
    recorded = STREAMED[0]["content"]
    asked = recorded + " And then some more words at the very end, please."
    long_recorded = recorded + " And then some more words at the very end, thanks."
    session_path = session.path
    text = session_path.read_text(encoding="utf-8").replace(recorded, long_recorded)
    session_path.write_text(text, encoding="utf-8")
    with replay_client(session) as client:
        with pytest.raises(ReplayError) as caught:
            list(client.chat([{"role": "user", "content": asked}]))
    message = str(caught.value)
    at = len(long_recorded) - len("thanks.") + 1
    assert f"messages[0] from character {at} " in message
    assert "the very end, thanks.'" in message and "the very end, please.'" in message


@pytest.mark.parametrize("raw", ["-3", "abc"])
def test_a_bad_replay_speed_in_the_environment_is_one_clear_error(
    session: Session, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY", str(session.path))
    monkeypatch.setenv("DEEPINFRA_MAGIC_REPLAY_SPEED", raw)
    with pytest.raises(ConfigurationError, match="DEEPINFRA_MAGIC_REPLAY_SPEED must"):
        DeepInfraClient(base_url=CLOSED_URL)
    with pytest.raises(ConfigurationError, match="replay_speed must not be negative"):
        DeepInfraClient(base_url=CLOSED_URL, replay=session.path, replay_speed=-3)
