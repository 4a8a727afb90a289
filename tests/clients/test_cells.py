"""What a cell does once its options are read (deepinfra_magic/_cells.py), without a
shell: a real client on the fake server, a publisher that records what would be shown,
and Ctrl-C pressed at a chosen moment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepinfra_magic._cells import (
    ChatCall,
    ImageCall,
    MapCall,
    make_images,
    reply_ending,
    run_map,
    stream_reply,
)
from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.display import Frontend
from deepinfra_magic.maps import MapProgress
from deepinfra_magic.types import ChatResult
from tests.fake_deepinfra import FakeDeepInfra

MakeClient = Callable[..., DeepInfraClient]
IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"
DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


class Screen:
    """A display publisher that keeps every bundle; Ctrl-C on the n-th image, if asked."""

    def __init__(self, interrupt_on_image: int | None = None) -> None:
        self.bundles: list[dict[str, Any]] = []
        self.interrupt_on_image = interrupt_on_image

    def __call__(self, data: dict[str, Any], metadata: Any = None, **kwargs: Any) -> None:
        self.bundles.append(data)
        images = sum(any(k.startswith("image/") for k in b) for b in self.bundles)
        if any(k.startswith("image/") for k in data) and images == self.interrupt_on_image:
            raise KeyboardInterrupt

    def text(self) -> str:
        return "\n".join(str(b.get("text/plain", "")) for b in self.bundles)


def test_ctrl_c_during_images_keeps_the_first_and_the_caption_says_so(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.image_delay_by_seed = {5: 0.0, 6: 0.5}
    screen = Screen(interrupt_on_image=1)
    call = ImageCall("a fox", IMAGE_MODEL, 2, {"seed": 5})
    outcome = make_images(make_sync_client(), Frontend(screen, live=True), call)
    assert outcome.interrupted and outcome.problem is not None
    assert [image.seed for image in outcome.value.images] == [5]
    assert "⏹ interrupted: 1 of 2 images kept" in screen.text()


def test_a_failed_image_request_is_returned_not_raised(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    screen = Screen()
    outcome = make_images(
        make_sync_client(), Frontend(screen, live=False), ImageCall("a fox", "no/such-model")
    )
    assert outcome.value is None and not outcome.interrupted
    assert "not found" in str(outcome.problem)
    assert "⚠ No image: failed." in screen.text()


class MapView:
    """A map progress view that presses Ctrl-C once ``stop_after`` rows are done."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after

        self.summary = ""

    def update(self, progress: MapProgress) -> None:
        if progress.done >= self.stop_after:
            raise KeyboardInterrupt

    def finish(self, summary: str) -> None:
        self.summary = summary


def test_ctrl_c_during_a_map_keeps_the_rows_answered_so_far(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(times=2, first_byte_delay=0.0)  # two quick answers, then
    fake_server.add_fault(times=None, first_byte_delay=30.0)  # nothing for 30 s
    client = make_sync_client()
    job = client.plan_map([f"row {i}" for i in range(8)], "Say {}", max_tokens=3, resume=False)
    notes: list[str] = []
    view = MapView(stop_after=2)
    outcome = run_map(client, job, view, MapCall(concurrency=1), notes)
    result = outcome.value
    assert outcome.interrupted and result.interrupted
    assert result.answered == 2 and result.remaining == 6
    assert "Interrupted" in view.summary


class ChatView:
    """A reply view that keeps what it is given; Ctrl-C on the n-th piece of answer."""

    def __init__(self, interrupt_on: int | None = None) -> None:
        self.answer: list[str] = []
        self.interrupt_on = interrupt_on

    def start(self) -> None:
        pass

    def add_reasoning(self, text: str) -> None:
        pass

    def add_answer(self, text: str) -> None:
        self.answer.append(text)
        if len(self.answer) == self.interrupt_on:
            raise KeyboardInterrupt


def test_ctrl_c_mid_reply_keeps_the_text_shown_so_far_and_says_so(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    view = ChatView(interrupt_on=2)
    call = ChatCall([{"role": "user", "content": "Hello"}], DEFAULT_MODEL, 0.7, 64)
    outcome = stream_reply(make_sync_client(), view, call)  # type: ignore[arg-type]
    result = outcome.value
    assert outcome.interrupted and result.interrupted and not result.complete
    assert result.text == "".join(view.answer) != ""
    note, footer, code = reply_ending(result, "code", timing=True)
    assert "Llama-3.3-70B" in footer
    assert note.startswith("*⏹ Interrupted: the partial reply is kept") and code is None


def test_code_format_hands_back_the_first_code_block() -> None:
    result = ChatResult("Try:\n\n```python\nprint(1)\n```\n\nor not.", DEFAULT_MODEL)
    assert reply_ending(result, "code", timing=True)[2] == "print(1)"
    assert reply_ending(result, "markdown", timing=True)[2] is None
