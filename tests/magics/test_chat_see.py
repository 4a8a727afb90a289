"""``--see``: figures, images, arrays, files, outputs and DataFrames as a model's input,
in a real IPython shell against the fake DeepInfra server (which checks every image part)."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from PIL import Image

from deepinfra_magic.errors import InvalidRequestError
from tests.fake_deepinfra import (
    CANARY_KEY,
    FakeDeepInfra,
)
from tests.kernel_helpers import Reply, all_text, chat_bodies

matplotlib.use("Agg")

VISION = "meta-llama/Llama-3.2-11B-Vision-Instruct"  # the default catalog's vision model
SUPPORTED = re.escape("--see takes a matplotlib Figure (or plt), a PIL Image, a numpy image array")


@pytest.fixture
def vip(ip: InteractiveShell, fake_server: FakeDeepInfra) -> InteractiveShell:
    """The shell, with the catalog's vision model as the default model."""
    ip.run_line_magic("config", f"DeepInfraMagics.default_model = {VISION!r}")
    return ip


def see(ip: InteractiveShell, line: str, prompt: str = "What is this?") -> Reply:
    """``%%deepinfra line`` in a rich frontend."""
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", line, prompt)
    return Reply(captured.outputs)


def sent_images(body: dict[str, Any]) -> list[tuple[str, tuple[int, int]]]:
    """(MIME type, size) of each image part of the last user message, decoded with Pillow."""
    content = body["messages"][-1]["content"]
    found = []
    for part in content if isinstance(content, list) else []:
        if part["type"] == "image_url":
            header, data = part["image_url"]["url"].split(",", 1)
            image = Image.open(io.BytesIO(base64.b64decode(data)))
            mime = header.removeprefix("data:").removesuffix(";base64")
            assert Image.MIME[image.format] == mime  # the bytes are what the URL says
            found.append((mime, image.size))
    return found


def sent_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def png(size: tuple[int, int], colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def figure(width: int = 1024, height: int = 768) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    fig.add_subplot().plot([1, 3, 2, 4])
    return fig


# --- every supported kind ---------------------------------------------------------------------


def _pyplot(ns: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    plt.close("all")
    plt.figure(figsize=(6.4, 4.8), dpi=100)
    plt.plot([1, 2, 3])
    ns["plt"] = plt


def _file(suffix: str, fmt: str) -> Callable[[dict[str, Any], Path], None]:
    def make(ns: dict[str, Any], tmp: Path) -> None:
        path = tmp / f"picture{suffix}"
        Image.new("RGB", (320, 200), (200, 40, 40)).save(path, format=fmt)
        ns["path"] = str(path)

    return make


KINDS: dict[str, tuple[Callable[..., None], str, str, tuple[int, int]]] = {
    # name: (set up the namespace, the --see expression, MIME type sent, size sent)
    "figure": (lambda ns, tmp: ns.update(fig=figure(800, 600)), "fig", "image/png", (800, 600)),
    "plt": (lambda ns, tmp: _pyplot(ns), "plt", "image/png", (640, 480)),
    "pil": (
        lambda ns, tmp: ns.update(img=Image.new("RGBA", (300, 200), (0, 0, 0, 0))),
        "img",
        "image/png",
        (300, 200),
    ),
    "numpy-rgb": (
        lambda ns, tmp: ns.update(arr=__import__("numpy").zeros((120, 160, 3), "uint8")),
        "arr",
        "image/png",
        (160, 120),
    ),
    "numpy-float-grey": (
        lambda ns, tmp: ns.update(arr=__import__("numpy").linspace(0, 1, 50 * 70).reshape(50, 70)),
        "arr",
        "image/png",
        (70, 50),
    ),
    "bytes": (lambda ns, tmp: ns.update(raw=png((64, 48))), "raw", "image/png", (64, 48)),
    "png-file": (_file(".png", "PNG"), "path", "image/png", (320, 200)),
    "jpeg-file": (_file(".jpg", "JPEG"), "path", "image/jpeg", (320, 200)),
    "webp-file": (_file(".webp", "WEBP"), "path", "image/png", (320, 200)),
    "gif-file": (_file(".gif", "GIF"), "path", "image/png", (320, 200)),
    "ipython-image": (
        lambda ns, tmp: ns.update(
            pic=__import__("IPython.display", fromlist=["Image"]).Image(data=png((90, 60)))
        ),
        "pic",
        "image/png",
        (90, 60),
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_supported_kind_is_sent_as_a_checked_image_part(
    vip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path, kind: str
) -> None:
    setup, expression, mime, size = KINDS[kind]
    setup(vip.user_ns, tmp_path)
    reply = see(vip, f"--see {expression}")
    (body,) = chat_bodies(fake_server)
    assert sent_images(body) == [(mime, size)]  # the fake server accepted it as well
    assert body["messages"][-1]["content"][0] == {"type": "text", "text": "What is this?"}
    assert f"1 image {size[0]}×{size[1]}" in reply.footer_text


def test_a_path_typed_as_is_and_an_output_are_attached(
    vip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chart.png").write_bytes(png((100, 80)))
    see(vip, "--see chart.png")
    vip.user_ns["Out"][41] = Image.new("RGB", (50, 40))
    see(vip, "--see Out[41]")
    bodies = chat_bodies(fake_server)
    assert sent_images(bodies[0]) == [("image/png", (100, 80))]
    assert sent_images(bodies[1]) == [("image/png", (50, 40))]


def test_cell_n_attaches_an_image_that_was_only_displayed(
    vip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    vip.user_ns["raw"] = png((72, 54), (250, 200, 0))
    # Displayed through the shell's own publisher, as a kernel shows an inline plot.
    result = vip.run_cell(
        "from IPython.display import Image, display\ndisplay(Image(data=raw))", store_history=True
    )
    count = result.execution_count
    see(vip, f"--see cell:{count}")
    # An inline backend closes its figures once shown: ``plt`` then means the last one shown.
    import matplotlib.pyplot as plt

    plt.close("all")
    vip.user_ns["plt"] = plt
    see(vip, "--see plt")
    first, second = chat_bodies(fake_server)
    assert sent_images(first) == sent_images(second) == [("image/png", (72, 54))]
    missing = rf"cell:{count + 50} showed no image .*showed images: {count}"
    with pytest.raises(UsageError, match=missing):
        see(vip, f"--see cell:{count + 50}")


def test_a_dataframe_goes_as_text_with_shape_dtypes_head_and_tail(
    vip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(np.arange(500 * 12).reshape(500, 12), columns=[f"c{i}" for i in range(12)])
    frame["c3"] = frame["c3"].astype(float)
    vip.user_ns.update(df=frame, fig=figure())
    reply = see(vip, "--see fig --see df", "Compare them.")
    assert reply.footer_text.endswith("1 image 1024×768 · 1 table 500×12")
    (body,) = chat_bodies(fake_server)
    text = sent_text(body)
    assert text.startswith("Compare them.\n\nDataFrame `df`: 500 rows × 12 columns.")
    assert "c0 (int64)" in text and "c3 (float64)" in text
    assert "First 5 rows:" in text and "Last 5 rows:" in text
    assert "| 499 | 5988 |" in text  # the last row, index first
    assert sent_images(body) == [("image/png", (1024, 768))]  # the table is not an image

    # A Series, and a table far over budget: still text, cut to fit.
    vip.user_ns["s"] = pd.Series(range(3), name="n")
    vip.user_ns["wide"] = pd.DataFrame({f"column_{i}": ["x" * 300] * 40 for i in range(60)})
    reply = see(vip, "--see s --see wide", "Describe.")
    text = sent_text(chat_bodies(fake_server)[-1])
    assert isinstance(chat_bodies(fake_server)[-1]["messages"][-1]["content"], str)
    assert "Series `s`: 3 rows × 1 columns." in text and "All rows:" in text
    wide = text.split("DataFrame `wide`")[1]
    assert len(wide) <= 4000 and "… 40 more" in wide
    assert reply.footer_text.endswith("2 tables 3×1, 40×60")


UNSUPPORTED = {
    "a number": ("42", rf"42: cannot attach a value of type int; {SUPPORTED}"),
    "a dict": ("{'a': 1}", rf"cannot attach a value of type dict; {SUPPORTED}"),
    "an unknown name": ("nothing_here", rf"name 'nothing_here' is not defined; {SUPPORTED}"),
    "a missing file": ("'missing.png'", r"cannot read the file 'missing.png' \(No such file"),
    "bytes that are no image": ("b'hello'", r"not a PNG, JPEG, WebP or GIF image"),
    "a 1-d array": ("__import__('numpy').zeros(5)", r"H×W, H×W×3 or H×W×4, not shape \(5,\)"),
    "an IPython Image by URL": (
        "__import__('IPython.display', fromlist=['Image']).Image(url='https://x/y.png')",
        r"holds a URL, not image data",
    ),
    "a missing output": ("Out[999]", r"Out\[999\] does not exist"),
}


@pytest.mark.parametrize("what", list(UNSUPPORTED))
def test_an_unsupported_value_is_one_line_naming_what_works(
    vip: InteractiveShell, fake_server: FakeDeepInfra, what: str
) -> None:
    expression, message = UNSUPPORTED[what]
    with pytest.raises(UsageError, match=message) as caught:
        see(vip, f'--see "{expression}"')
    assert "\n" not in str(caught.value)
    assert chat_bodies(fake_server) == []


def test_images_are_downscaled_to_max_image_pixels(
    vip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    vip.user_ns["big"] = Image.new("RGB", (2000, 1500), (10, 200, 10))
    vip.user_ns["fig"] = figure(2000, 1500)
    reply = see(vip, "--see big")
    assert sent_images(chat_bodies(fake_server)[-1]) == [("image/png", (1414, 1060))]
    assert reply.footer_text.endswith("1 image 1414×1060 (from 2000×1500)")
    vip.run_line_magic("config", "DeepInfraMagics.max_image_pixels = 10000")
    see(vip, "--see big --see fig")
    sizes = [size for _, size in sent_images(chat_bodies(fake_server)[-1])]
    assert len(sizes) == 2
    for width, height in sizes:
        assert width * height <= 10000 and abs(width / height - 4 / 3) < 0.03


def test_the_same_image_twice_is_sent_once(
    vip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    vip.user_ns["fig"] = figure(300, 200)
    see(vip, "--see fig --see fig", "First look.")
    see(vip, "--see fig", "Look again.")
    first, second = chat_bodies(fake_server)
    assert len(sent_images(first)) == 1
    # The earlier message keeps its text; the image goes only with the newest message.
    earlier = second["messages"][0]["content"]
    assert [p["type"] for p in earlier] == ["text", "text"]
    assert len(sent_images(second)) == 1


def test_a_model_that_cannot_see_gets_a_one_line_error_naming_vision_models(
    vip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    vip.user_ns["fig"] = figure(100, 100)
    with pytest.raises(UsageError) as caught:
        see(vip, "-m meta-llama/Llama-3.3-70B-Instruct-Turbo --see fig")
    message = str(caught.value)
    assert "cannot see images" in message and VISION in message and "\n" not in message
    assert chat_bodies(fake_server) == []
    # After an image exchange, a text model still gets the conversation, without the image.
    see(vip, "--see fig", "What is it?")
    see(vip, "-m meta-llama/Llama-3.3-70B-Instruct-Turbo", "And in one word?")
    history = chat_bodies(fake_server)[-1]["messages"]
    assert history[0]["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "text", "text": "[an image was attached here]"},
    ]


def test_a_model_the_server_says_cannot_see_gets_the_vision_models_too(
    vip: InteractiveShell, fake_server: FakeDeepInfra
) -> None:
    # Served, but not in the catalog: nothing says before the request that it cannot see.
    fake_server.configure(extra_models={"acme/local-chat"})
    vip.user_ns["fig"] = figure(100, 100)
    with capture_output() as captured, pytest.raises(InvalidRequestError) as caught:
        vip.run_cell_magic("deepinfra", "-m acme/local-chat --see fig", "What is it?")
    message = str(caught.value)
    assert message.startswith(
        "acme/local-chat cannot see images (the server answered 500: image input is not "
        f"supported); vision models: {VISION} (pick one with -m;"
    )
    assert "%deepinfra_models --vision" in message and "\n" not in message
    assert len(chat_bodies(fake_server)) == 1  # sent once: the server's answer is final
    assert "No reply" in Reply(captured.outputs).final_text


def test_vision_models_are_marked_in_the_model_list(vip: InteractiveShell) -> None:
    with capture_output() as captured:
        vip.run_line_magic("deepinfra_models", "--vision")
    markdown = captured.outputs[0].data["text/markdown"]
    assert f"| `{VISION}` | text, vision |" in markdown
    assert "Llama-3.3-70B" not in markdown


def test_the_fake_server_rejects_an_image_part_that_is_not_what_it_says(
    make_client: Callable[..., Any],
) -> None:
    from deepinfra_magic.errors import InvalidRequestError

    client = make_client()
    wrong = base64.b64encode(png((4, 4))).decode()
    for url in (f"data:image/jpeg;base64,{wrong}", "data:image/png;base64,@@@", "ftp://x"):
        content = [{"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(InvalidRequestError, match="image_url"):
            client.chat([{"role": "user", "content": content}], VISION, stream=False)


def test_the_key_appears_nowhere_in_what_is_sent_shown_or_recorded(
    vip: InteractiveShell, fake_server: FakeDeepInfra, tmp_path: Path
) -> None:
    import pandas as pd

    recording = tmp_path / "see.json"
    vip.run_line_magic("deepinfra_record", str(recording))
    vip.user_ns.update(fig=figure(200, 100), df=pd.DataFrame({"a": [1, 2]}))
    reply = see(vip, "--see fig --see df")
    with capture_output() as history:
        vip.run_line_magic("deepinfra_history", "")
    (body,) = chat_bodies(fake_server)
    assert CANARY_KEY not in json.dumps(body)
    assert CANARY_KEY not in all_text(reply.outputs) + all_text(history.outputs)
    assert CANARY_KEY not in recording.read_text()
    # The history says what went with the prompt: the image and the table.
    assert "[+ 1 image, 1 table]" in history.outputs[0].data["text/plain"]


def test_the_attachment_library_works_without_ipython(tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        from deepinfra_magic.attachments import attach, summary, user_content
        from deepinfra_magic.conversation import Conversation
        assert not any(n in sys.modules for n in ("numpy", "PIL", "pandas", "matplotlib"))
        image = attach(open(sys.argv[1], "rb").read(), "pic")
        content = user_content("What is it?", [image])
        messages = Conversation().messages(content)
        print(summary([image]), len(messages[0]["content"]), "IPython" in sys.modules)
        """
    )
    picture = tmp_path / "pic.png"
    picture.write_bytes(png((30, 20)))
    done = subprocess.run(
        [sys.executable, "-c", code, str(picture)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "image", "30×20", "2", "False"]


def test_whether_a_model_can_see_comes_from_tags_then_names() -> None:
    from deepinfra_magic.catalog import ModelCatalog

    entries = [
        {"model_name": "a/Text", "type": "text-generation", "tags": ["chat"]},
        {"model_name": "b/Seer", "type": "text-generation", "tags": ["chat", "vision"]},
        {"model_name": "c/local-model", "type": "text-generation"},  # another server: no tags
        {"model_name": "d/Qwen2.5-VL-7B-Instruct", "type": "text-generation", "tags": []},
    ]
    catalog = ModelCatalog.from_entries(entries, "network")
    names = ("a/Text", "b/Seer", "c/local-model", "d/Qwen2.5-VL-7B-Instruct", "e/unlisted")
    assert [catalog.can_see(n) for n in names] == [False, True, None, True, None]
    assert catalog.can_see("f/Llama-3.2-90B-Vision-Instruct") is True  # not listed, but named so
    assert [m.name for m in catalog.vision_models] == ["b/Seer", "d/Qwen2.5-VL-7B-Instruct"]


def test_a_tiny_max_image_pixels_is_refused_in_one_line(vip: InteractiveShell) -> None:
    from traitlets import TraitError

    magics = vip.magics_manager.registry["DeepInfraMagics"]
    with pytest.raises(
        TraitError, match=r"at least 4096 \(64×64\), not 10; the default is 1,500,000"
    ):
        magics.max_image_pixels = 10
    assert magics.max_image_pixels == 1_500_000
