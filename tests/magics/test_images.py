"""``%deepinfra_image`` (line and cell) in a real IPython shell against the fake server."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import RichOutput, capture_output

from deepinfra_magic.client import DeepInfraClient
from deepinfra_magic.display import Frontend
from deepinfra_magic.errors import InvalidRequestError, ModelNotFoundError
from deepinfra_magic.images import ImageResult
from deepinfra_magic.magics import images as image_family
from tests.fake_deepinfra import (
    CANARY_KEY,
    FILES_PREFIX,
    IMAGE_STYLE_MIME,
    INFERENCE_PREFIX,
    FakeDeepInfra,
)
from tests.kernel_helpers import (
    MARKDOWN,
    METADATA_KEY,
    PLAIN,
    InterruptingPublisher,
    all_text,
    console_view,
    display_id,
    images_in,
    notebook_view,
)

FLUX = "black-forest-labs/FLUX-1-schnell"


def image_bodies(server: FakeDeepInfra) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path.startswith(INFERENCE_PREFIX)]


def make_images(ip: InteractiveShell, line: str, cell: str | None = None) -> list[RichOutput]:
    with capture_output() as captured:
        if cell is None:
            ip.run_line_magic("deepinfra_image", line)
        else:
            ip.run_cell_magic("deepinfra_image", line, cell)
    return captured.outputs


def seed_of(output: RichOutput) -> int:
    seed: int = output.metadata[METADATA_KEY]["seed"]
    return seed


# --- what is shown --------------------------------------------------------------------------------


def test_one_image_progress_then_image_then_caption(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    outputs = make_images(ip, "--seed 5 a red fox")
    progress, image, done, caption = outputs
    ident = display_id(progress)
    assert ident is not None and progress.update is False
    assert progress.data[PLAIN].startswith(f"⏳ Generating an image with {FLUX}")
    # The image is plain display data (no display id), with a text alternative.
    assert display_id(image) is None and image.update is False
    assert set(image.data) == {"image/png", PLAIN}
    assert base64.b64decode(image.data["image/png"]).startswith(b"\x89PNG")
    assert image.data[PLAIN] == "[image 64×64 image/png, seed 5: a red fox]"
    assert image.metadata[METADATA_KEY] == {
        "model": FLUX,
        "prompt": "a red fox",
        "seeds": [5],
        "seed": 5,
        "replayed": False,
        "replayed_from": None,
    }
    # The progress line ends in place saying what was made (never empty: a saved notebook
    # would keep an empty box); the caption is a fresh output (jupyter console, which
    # ignores updates, shows it): a notebook shows that line, the image and its caption.
    assert done.update is True and display_id(done) == ident
    assert done.data[PLAIN] == f"✓ Generated an image with {FLUX}"
    assert caption.update is False and display_id(caption) is None
    assert [o.data for o in notebook_view(outputs)] == [done.data, image.data, caption.data]
    assert console_view(outputs)[1:] == [image.data[PLAIN], caption.data[PLAIN]]
    plain = caption.data[PLAIN]
    assert plain.startswith(f"{FLUX} · seed 5 · 64×64 · ")
    assert plain.endswith(" s · $0.0005")
    assert f"`{FLUX}`" in caption.data[MARKDOWN]
    assert caption.metadata[METADATA_KEY]["seeds"] == [5]
    assert image_bodies(fake_server) == [{"prompt": "a red fox", "seed": 5}]


def test_three_images_are_requested_at_once_and_shown_in_request_order_with_seeds(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # They arrive as 11, 12, 10; the lesson "seed 10 gives the first one back" needs 10 first.
    fake_server.configure(image_delay_by_seed={10: 0.8, 11: 0.2, 12: 0.5})
    shown = make_images(ip, "-n 3 --seed 10 -o shots three kittens")
    # The progress line counts the images as they arrive (updates in place).
    *ticks, done = [o for o in shown if o.update]
    counts = [tick.data[PLAIN].rsplit(" · ", 1)[-1] for tick in ticks]
    assert counts[-2:] == ["1 of 3 done", "2 of 3 done"]
    outputs = [o for o in shown if not o.update]
    progress, caption = outputs[0], outputs[-1]
    images = images_in(outputs)
    assert [seed_of(o) for o in images] == [10, 11, 12]
    # Each image comes right after a line naming its number and seed; all plain outputs.
    labels = [outputs[outputs.index(image) - 1] for image in images]
    assert [label.data[PLAIN] for label in labels] == [
        "1 of 3 · seed 10",
        "2 of 3 · seed 11",
        "3 of 3 · seed 12",
    ]
    assert outputs[1:-1] == [o for pair in zip(labels, images, strict=True) for o in pair]
    # The progress line ends in place saying what was made, before the caption is out.
    assert display_id(done) == display_id(progress) and shown.index(done) == len(shown) - 2
    assert done.data[PLAIN] == f"✓ Generated 3 images with {FLUX}"
    assert all(display_id(o) is None for o in outputs[1:])
    assert all("three kittens" in o.data[PLAIN] for o in images)
    assert fake_server.peak_concurrency == 3
    assert sorted(body["seed"] for body in image_bodies(fake_server)) == [10, 11, 12]
    assert progress.data[PLAIN].startswith(f"⏳ Generating 3 images with {FLUX}")
    assert [o.data for o in notebook_view(shown)] == [done.data, *(o.data for o in outputs[1:])]
    text = caption.data[PLAIN]
    assert text.startswith(f"{FLUX} · seeds 10, 11, 12 · 64×64 · ") and "$0.0015" in text
    result: ImageResult = ip.user_ns["shots"]
    assert [image.seed for image in result] == [10, 11, 12]
    # No widget: nothing here needs a live kernel to show again.
    assert all(set(o.data) <= {PLAIN, MARKDOWN, "image/png"} for o in outputs)


@pytest.mark.parametrize(("style", "mime"), list(IMAGE_STYLE_MIME.items()))
def test_every_answer_style_is_shown_with_the_type_the_server_sent(
    ip: InteractiveShell, fake_server: FakeDeepInfra, style: str, mime: str
) -> None:
    fake_server.configure(image_style=style)
    (image,) = images_in(make_images(ip, "--seed 1 a lighthouse"))
    assert set(image.data) == {mime, PLAIN}
    assert "a lighthouse" in image.data[PLAIN] and mime in image.data[PLAIN]
    downloads = [r for r in fake_server.requests if r.path.startswith(FILES_PREFIX)]
    assert len(downloads) == (1 if style == "url" else 0)
    # A hosted file is fetched without our key.
    assert all("authorization" not in r.headers for r in downloads)


def test_cell_form_takes_the_cell_as_the_prompt(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    prompt = 'A "quoted" cat -- with a hat\n-m not an option, {x} $y'
    make_images(ip, "--seed 3 --width 512", prompt + "\n")
    assert image_bodies(fake_server) == [{"prompt": prompt, "seed": 3, "width": 512}]


@pytest.mark.parametrize(
    ("line", "prompt", "extra", "count"),
    [
        ('-n 2 "a cat -- with a hat"', "a cat -- with a hat", {}, 2),
        ('a cat\'s "hat" -m x', 'a cat\'s "hat" -m x', {}, 1),
        ("-- -starts-with-dash", "-starts-with-dash", {}, 1),
        (
            "--width 128 --height=96 'one pair of quotes'",
            "one pair of quotes",
            {"width": 128, "height": 96},
            1,
        ),
        (
            '--negative "blurry, dark" a sunny beach',
            "a sunny beach",
            {"negative_prompt": "blurry, dark"},
            1,
        ),
        (
            "--steps 4 --guidance 7.5 -p scheduler=euler a b",
            "a b",
            {"num_inference_steps": 4, "guidance_scale": 7.5, "scheduler": "euler"},
            1,
        ),
        ("{x} and $y at 50% off", "{x} and $y at 50% off", {}, 1),
        ("-m stabilityai/sd3.5 -- --", "--", {}, 1),
    ],
)
def test_options_come_first_and_the_rest_of_the_line_is_the_prompt(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    line: str,
    prompt: str,
    extra: dict[str, Any],
    count: int,
) -> None:
    ip.user_ns.update(x="SECRET_X", y="SECRET_Y")
    make_images(ip, line)
    bodies = image_bodies(fake_server)
    assert len(bodies) == count
    assert all(body["prompt"] == prompt for body in bodies)
    for key, value in extra.items():
        assert bodies[0][key] == value


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--width 10 a cat", r"--width: expected a whole number from 64 to 4096, got '10'"),
        ("--height big a cat", r"--height: expected a whole number from 64 to 4096, got 'big'"),
        ("-n 0 a cat", r"-n/--num-images: expected a whole number from 1 to 16, got '0'"),
        ("-n 17 a cat", r"-n/--num-images: expected a whole number from 1 to 16, got '17'"),
        ("--seed -1 a cat", r"--seed: expected a whole number ≥ 0, got '-1'"),
        ("--steps 0 a cat", r"--steps: expected a whole number from 1 to 500, got '0'"),
        ("--guidance lots a cat", r"--guidance: expected a number from 0 to 100, got 'lots'"),
        ("--bogus 1 a cat", r"unrecognized arguments: --bogus"),
        ("-o 2bad a cat", r"-o/--out needs a Python variable name, got '2bad'"),
        ("-p oops a cat", r"-p/--param expects KEY=VALUE"),
        ("-p n=2 a cat", r"-p/--param cannot set n: use -n/--num-images"),
        ("-p model=x a cat", r"-p/--param cannot set model: use -m/--model"),
        ("-p prompt=x a cat", r"-p/--param cannot set prompt: write the prompt after the options"),
        ("-n 2", r"%deepinfra_image: no prompt\. Usage: %deepinfra_image \[options\] PROMPT"),
        ("", r"%deepinfra_image: no prompt"),
        ("--width", r"--width: expected one argument"),
    ],
)
def test_bad_values_are_usage_errors_with_the_allowed_form(
    ip: InteractiveShell, fake_server: FakeDeepInfra, line: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        ip.run_line_magic("deepinfra_image", line)
    assert "\n" not in str(caught.value)
    assert fake_server.requests == []


def test_cell_form_errors_too(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    with pytest.raises(UsageError, match=r"-n/--num-images: expected a whole number"):
        ip.run_cell_magic("deepinfra_image", "-n many", "a cat")
    with pytest.raises(UsageError, match=r"no prompt"):
        ip.run_cell_magic("deepinfra_image", "", "  \n")
    assert fake_server.requests == []


def test_a_text_model_is_refused_naming_image_models(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("deepinfra_image", "-m meta-llama/Llama-3.3-70B-Instruct-Turbo a cat")
    message = str(caught.value)
    assert "meta-llama/Llama-3.3-70B-Instruct-Turbo is a text model" in message
    assert FLUX in message and "%deepinfra_models --images" in message
    assert image_bodies(fake_server) == []


def test_unknown_image_model_is_one_line(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    with capture_output() as captured:
        result = ip.run_cell("%deepinfra_image -m black-forest-labs/FLUX-1-schnel a cat")
    assert isinstance(result.error_in_exec, ModelNotFoundError)
    lines = [line for line in captured.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and f"Did you mean: {FLUX}" in lines[0]
    # The progress line does not stay "Generating…".
    assert "Generating" not in notebook_view(captured.outputs)[-1].data[PLAIN]


def test_some_images_failing_keeps_the_others(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.add_fault(path=INFERENCE_PREFIX + "*", status=422, message="NSFW prompt refused")
    with capture_output() as captured:
        result = ip.run_cell("%deepinfra_image -n 2 -o got two owls")
    assert isinstance(result.error_in_exec, InvalidRequestError)
    assert len(images_in(captured.outputs)) == 1
    assert "⚠ 1 of 2 images" in notebook_view(captured.outputs)[-1].data[PLAIN]
    assert len(ip.user_ns["got"]) == 1
    assert len([line for line in captured.stdout.splitlines() if line.strip()]) == 1


# --- saving and the result ------------------------------------------------------------------------


def test_save_one_image_to_a_file(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "fox"
    outputs = make_images(ip, f"--seed 2 --save {target} a fox")
    saved = tmp_path / "out" / "fox.png"
    assert saved.read_bytes() == base64.b64decode(images_in(outputs)[0].data["image/png"])
    assert f"saved to `{saved}`" in notebook_view(outputs)[-1].data[MARKDOWN]


def test_save_several_images_into_a_new_folder_without_overwriting(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    folder = tmp_path / "shots"
    make_images(ip, f"-n 2 --seed 1 --save {folder} two owls")
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(first) == ["two-owls-1.png", "two-owls-2.png"]
    make_images(ip, f"-n 2 --seed 1 --save {folder} two owls")
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 4 and set(first) < set(names)
    assert {name: (folder / name).read_bytes() for name in first} == first


def test_out_variable_holds_bytes_mime_and_can_save(
    ip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    fake_server.configure(image_style="jpeg")
    make_images(ip, "--seed 9 --out pic a jpeg please")
    result = ip.user_ns["pic"]
    assert isinstance(result, ImageResult)
    assert (result.model, result.prompt, result.seed) == (FLUX, "a jpeg please", 9)
    (image,) = result.images
    assert image.mime_type == "image/jpeg" and image.data.startswith(b"\xff\xd8")
    (path,) = result.save(tmp_path / "kept")
    assert path == tmp_path / "kept.jpg" and path.read_bytes() == image.data
    magics = ip.magics_manager.registry["DeepInfraMagics"]
    assert magics.last_images is result


def test_terminal_saves_each_image_to_a_temporary_file_and_prints_its_path(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ip.run_line_magic("deepinfra_image", "--seed 4 a quiet lake")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"⏳ Generating an image with {FLUX} · 0 s"
    alt, _, path = lines[1].partition(" saved to ")
    assert alt == "[image 64×64 image/png, seed 4: a quiet lake]"
    saved = Path(path)
    assert saved.parent.parent == tmp_path and saved.name == "a-quiet-lake-4.png"
    assert saved.read_bytes() == ip.magics_manager.registry["DeepInfraMagics"].last_images[0].data
    assert lines[2].startswith(f"{FLUX} · seed 4 · 64×64") and len(lines) == 3


def test_terminal_with_save_writes_only_there(
    ip: InteractiveShell,
    fake_server: FakeDeepInfra,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    ip.run_line_magic("deepinfra_image", f"-n 2 --seed 4 --save {tmp_path / 'kept'} two lakes")
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:3] == [
        "[image 64×64 image/png, seed 4: two lakes]",
        "[image 64×64 image/png, seed 5: two lakes]",
    ]
    assert "saved to" in lines[3] and not (tmp_path / "temp").exists()
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [
        "two-lakes-4.png",
        "two-lakes-5.png",
    ]


def test_no_key_in_image_outputs(ip: InteractiveShell, fake_server: FakeDeepInfra) -> None:
    fake_server.configure(image_style="url")
    outputs = make_images(ip, "-n 2 my key is")
    assert CANARY_KEY not in all_text(outputs)


def test_a_key_typed_into_an_image_prompt_is_neither_sent_nor_shown(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    outputs = make_images(ip, f"a poster reading {CANARY_KEY}")
    assert [body["prompt"] for body in image_bodies(fake_server)] == ["a poster reading ***"]
    assert CANARY_KEY not in all_text(outputs)


def test_interrupt_stops_the_image_requests(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(image_delay=2.0)
    publisher = InterruptingPublisher(1, shell=ip)  # Ctrl-C at the first progress tick (1 s)
    ip.display_pub = publisher
    with pytest.raises(KeyboardInterrupt):
        ip.run_line_magic("deepinfra_image", "-n 2 slow owls")
    shown = notebook_view(publisher.rich_outputs)
    assert shown[-1].data[PLAIN] == "⏹ Interrupted: no image was kept."
    assert fake_server.wait_for_disconnect(timeout=2.5, count=2)


def test_interrupt_keeps_the_images_that_arrived_in_one_line_then_the_interrupt(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    fake_server.configure(image_delay_by_seed={1: 0.0, 2: 5.0, 3: 5.0})
    # Update 1 counts the first image ("1 of 3 done"); Ctrl-C at update 2, the clock at 1 s.
    publisher = InterruptingPublisher(2, shell=ip)
    ip.display_pub = publisher
    with capture_output(display=False) as printed:
        result = ip.run_cell("%deepinfra_image -n 3 --seed 1 -o kept three owls")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    outputs = publisher.rich_outputs
    assert [seed_of(o) for o in images_in(outputs)] == [1]
    caption = notebook_view(outputs)[-1].data[PLAIN]
    assert caption.startswith(f"{FLUX} · seed 1 · ")
    assert caption.endswith("⏹ interrupted: 1 of 3 images kept")
    # The time is how long the cell ran (a second at least), not the first image's runtime.
    ran = float(caption.split(" · ")[3].removesuffix(" s"))
    assert ran >= 1.0 and ip.user_ns["kept"].runtime_ms < 1000
    assert [image.seed for image in ip.user_ns["kept"]] == [1]
    # The interrupt's traceback is this cell's, not the worker threads' and their waits.
    traceback = printed.stdout + printed.stderr
    assert "KeyboardInterrupt" in traceback
    assert "concurrent" not in traceback and "threading" not in traceback
    assert fake_server.wait_for_disconnect(timeout=5, count=2)


def test_chat_magic_with_an_image_model_refuses_image_fields_in_one_line(
    ip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    message = r"-p/--param cannot set n: a cell gets one reply \(images: %deepinfra_image -n N\)\.$"
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("deepinfra", f"-m {FLUX} -p n=2", "a fox")
    assert image_bodies(fake_server) == []


# --- make_images without a shell: a publisher that records, Ctrl-C at a chosen image ---

MakeClient = Callable[..., DeepInfraClient]
IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell"


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
    call = image_family.ImageCall("a fox", IMAGE_MODEL, 2, {"seed": 5})
    outcome = image_family.make_images(make_sync_client(), Frontend(screen, live=True), call)
    assert outcome.interrupted and outcome.problem is not None
    assert [image.seed for image in outcome.value.images] == [5]
    assert "⏹ interrupted: 1 of 2 images kept" in screen.text()


def test_a_failed_image_request_is_returned_not_raised(
    make_sync_client: MakeClient, fake_server: FakeDeepInfra
) -> None:
    screen = Screen()
    outcome = image_family.make_images(
        make_sync_client(),
        Frontend(screen, live=False),
        image_family.ImageCall("a fox", "no/such-model"),
    )
    assert outcome.value is None and not outcome.interrupted
    assert "not found" in str(outcome.problem)
    assert "⚠ No image: failed." in screen.text()
