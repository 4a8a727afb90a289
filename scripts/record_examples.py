"""Re-create the recordings that the example notebooks replay without a key.

Default: record against the project's fake DeepInfra server (tests/fake_deepinfra/) with
the scripted answers below, paced like a real model. This is how the shipped recordings
were made (no live key was used), and it is reproducible offline.

``--live``: record against the real API instead, with ``DEEPINFRA_API_KEY`` from the
environment. The key is never written (the recorder writes no headers and scrubs the key
value from everything it writes); the script checks the files afterwards anyway.

    python scripts/record_examples.py [--live] [NAME ...]   (default: every example)
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))

from tests import fake_deepinfra  # noqa: E402  (the repo's test double, not part of the package)
from tests.fake_deepinfra import server as fake_http  # noqa: E402

PLACEHOLDER_KEY = "recording-placeholder-not-a-key"

# (substring of the last user message, answer, reasoning) in the order the notebooks ask.
SCRIPTS: dict[str, list[tuple[str, str, str | None]]] = {
    "quickstart": [
        (
            "what a Python generator is",
            "A **generator** is a function that uses `yield` to produce a sequence of values "
            "lazily, one at a time, instead of building the whole sequence in memory. Each time "
            "you ask for the next value (with `next()` or a `for` loop), the function resumes "
            "exactly where it paused, with all its local variables intact. That makes generators "
            "ideal for large or endless streams of data, such as reading a huge file line by line.",
            None,
        ),
        (
            "tiny example",
            "Here is a generator that counts down from a number:\n\n"
            "```python\n"
            "def countdown(n):          # a plain def: the yield below makes it a generator\n"
            "    while n > 0:            # keep going until we reach zero\n"
            "        yield n             # hand back n and pause right here\n"
            "        n -= 1              # resume here when the next value is asked for\n"
            "\n"
            "for value in countdown(3):  # the for loop calls next() for us\n"
            "    print(value)            # prints 3, then 2, then 1\n"
            "```\n\n"
            "Nothing runs when you call `countdown(3)`: the body only starts when the loop asks "
            "for the first value.",
            None,
        ),
        (
            "Fibonacci",
            "```python\n"
            "def fib(n):\n"
            '    """Yield the first n Fibonacci numbers: 0, 1, 1, 2, 3, 5, ..."""\n'
            "    a, b = 0, 1\n"
            "    for _ in range(n):\n"
            "        yield a\n"
            "        a, b = b, a + b\n"
            "\n\n"
            "print(list(fib(10)))  # [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]\n"
            "```\n\n"
            "It keeps only the last two numbers, so even `fib(1_000_000)` runs in constant memory.",
            None,
        ),
        (
            "inference provider",
            "An inference provider runs trained machine-learning models on its own GPUs and "
            "serves their predictions through an API, so you can use large models without "
            "owning or operating the hardware.",
            None,
        ),
    ],
    "workshop": [
        (
            "photosynthesis",
            "Great question! **Photosynthesis** is how plants make their own food.\n\n"
            "1. The leaves catch **sunlight** (that is what the green chlorophyll is for).\n"
            "2. The roots drink **water** from the soil.\n"
            "3. The leaves breathe in **carbon dioxide** from the air.\n\n"
            "Using the energy of the light, the plant turns water and carbon dioxide into "
            "**sugar** (its food) and lets out **oxygen**, the gas we breathe. So every time "
            "you take a breath, you can thank a plant!",
            None,
        ),
        (
            "photosynthesis",
            "Photosynthesis is the process by which plants, algae and some bacteria use the "
            "energy of sunlight to turn carbon dioxide and water into glucose, releasing oxygen.",
            None,
        ),
        (
            "pet robot",
            "**Bolt** — short, friendly, and easy to call across the room when it is time to "
            "recharge.",
            None,
        ),
        (
            "pet robot",
            "**Sir Whirrsalot the Unflappable** — every robot deserves a knighthood, and this "
            "one hums like a tin suit of armour on a windy day.",
            None,
        ),
        (
            "1001",
            "No. **1001 is not prime**: it factors as **7 × 11 × 13**.\n\n"
            "Check: 7 × 11 = 77, and 77 × 13 = 1001. This is also behind a neat trick: any "
            "three-digit number written twice (like 482482) equals that number × 1001, so it "
            "is always divisible by 7, 11 and 13.",
            "The user asks whether 1001 is prime. It is odd, so 2 does not divide it. Its digit "
            "sum is 2, so 3 does not. It does not end in 0 or 5. Try 7: 7 × 143 = 1001, so it is "
            "composite. And 143 = 11 × 13. So 1001 = 7 × 11 × 13.",
        ),
    ],
    "ask_about_your_plot": [
        (
            "What does this plot show",
            "The bar chart shows **units sold per month in 2025**. Sales climb steadily from "
            "about **120 in January** to **180 in June**, then **drop sharply in August to "
            "about 95**, the lowest month of the year, before recovering in September and "
            "rising to a peak of about **260 in December**.\n\n"
            "The August dip is the unusual part: it breaks an otherwise smooth trend, so it is "
            "worth checking whether it is real (a holiday closure, a stock-out) or missing data. "
            "The December peak looks like holiday demand.",
            None,
        ),
        (
            "which month stands out",
            "**August** stands out: at about 95 units it is far below both July and "
            "September, breaking an otherwise steady climb.",
            None,
        ),
        (
            "Summarise this table",
            "- **12 rows**, one per month of 2025, with `month` (text), `units` (whole numbers) "
            "and `price` (decimals).\n"
            "- Units range from **95 in August** to **260 in December**; the average is about "
            "**168** a month.\n"
            "- The price rises twice, **9.5 → 9.9 in April** and **9.9 → 10.5 in September**, "
            "and sales keep growing after both increases.",
            None,
        ),
        (
            "A cell in my Jupyter notebook failed",
            "`august` is a plain dictionary made from one row of `sales`, so its keys are the "
            "table's columns: `month`, `units` and `price`. There is no `revenue` column, so "
            "`august[\"revenue\"]` raises `KeyError: 'revenue'`. Revenue is units times price:\n\n"
            "```python\n"
            "august = sales.iloc[7].to_dict()  # August\n"
            'august["units"] * august["price"]\n'
            "```\n\n"
            "To have it for every month, add a column: "
            '`sales["revenue"] = sales["units"] * sales["price"]`.',
            None,
        ),
        (
            "what check would have made this error clearer",
            "Checking the key first, for example "
            '`assert "revenue" in august, f"no revenue; keys are {list(august)}"`, would have '
            "named the columns that do exist instead of only the missing one.",
            None,
        ),
    ],
    "classroom": [],  # the teacher's notebook mints and inspects tokens; it asks no model
    "label_a_table": [
        ("Review: Boils in two minutes", "positive", None),
        ("Review: The sound is fine", "negative", None),
        ("Review: Roomy, comfortable", "positive", None),
        ("Review: Bright enough", "mixed", None),
        ("Review: Crushes ice", "mixed", None),
        ("Review: Turned inside out", "negative", None),
        ("review of a kettle:", '{"sentiment": "positive", "confidence": 0.96}', None),
        ("review of a headphones:", '{"sentiment": "negative", "confidence": 0.88}', None),
        ("review of a backpack:", '{"sentiment": "positive", "confidence": 0.93}', None),
        ("review of a desk lamp:", '{"sentiment": "mixed", "confidence": 0.74}', None),
        ("review of a blender:", '{"sentiment": "mixed", "confidence": 0.81}', None),
        ("review of a umbrella:", '{"sentiment": "negative", "confidence": 0.97}', None),
        ("five words: Boils in two minutes", "Fast, stylish kettle; loved.", None),
        ("five words: The sound is fine", "Ear cup broke in a week.", None),
        ("five words: Roomy, comfortable", "Roomy, comfy, rainproof; rebuy.", None),
        ("five words: Bright enough", "Bright but flimsy, flickering switch.", None),
        ("five words: Crushes ice", "Crushes ice well, but loud.", None),
        ("five words: Turned inside out", "Broke in first gust.", None),
    ],
}


def scene_png(prompt: str, seed: int, width: int, height: int) -> bytes:
    """A small painted landscape (sky, sun, two hills) whose palette follows prompt and seed."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    hue = digest[0] / 255

    def colour(h: float, light: float, sat: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hls_to_rgb(h % 1.0, light, sat)
        return int(r * 255), int(g * 255), int(b * 255)

    sky_top, sky_low = colour(hue, 0.35, 0.55), colour(hue + 0.08, 0.78, 0.7)
    sun = colour(hue + 0.5, 0.75, 0.9)
    far, near = colour(hue + 0.25, 0.35, 0.35), colour(hue + 0.3, 0.2, 0.45)
    sun_x, sun_y = width * (0.25 + digest[1] / 512), height * (0.2 + digest[2] / 1024)
    radius = min(width, height) * 0.11
    phase_far, phase_near = digest[3] / 40, digest[4] / 40
    rows = bytearray()
    for y in range(height):
        t = y / max(1, height - 1)
        sky = tuple(int(a + (b - a) * t) for a, b in zip(sky_top, sky_low, strict=True))
        for x in range(width):
            u = x / width
            far_line = height * (0.62 + 0.06 * math.sin(6.0 * u + phase_far))
            near_line = height * (0.75 + 0.08 * math.sin(3.5 * u + phase_near + 1.3))
            if y > near_line:
                shade = 1 - 0.35 * (y - near_line) / height
                pixel = tuple(int(c * shade) for c in near)
            elif y > far_line:
                pixel = far
            else:
                distance = math.hypot(x - sun_x, y - sun_y)
                glow = max(0.0, 1 - distance / radius)
                pixel = sun if glow > 0.05 else sky
                if glow <= 0.05:
                    halo = max(0.0, 1 - distance / (radius * 2.2)) * 0.35
                    pixel = tuple(int(s + (h - s) * halo) for s, h in zip(sky, sun, strict=True))
            rows += bytes(pixel)
    return fake_deepinfra.make_png(width, height, bytes(rows), compress_level=9)


def run_notebook(name: str, env: dict[str, str]) -> None:
    """Execute one example notebook headless with the given extra environment."""
    notebook = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(EXAMPLES)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def record(name: str, live: bool) -> Path:
    """Record one example notebook's exchanges into examples/<name>.recording.json."""
    target = EXAMPLES / f"{name}.recording.json"
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as cache:
        env = {"DEEPINFRA_MAGIC_RECORD": str(target), "XDG_CACHE_HOME": cache}
        if live:
            if not os.environ.get("DEEPINFRA_API_KEY"):
                raise SystemExit("--live needs DEEPINFRA_API_KEY in the environment.")
            run_notebook(name, env)
        else:
            fake_http.render_image = scene_png  # nicer pictures than the test patterns
            with fake_deepinfra.FakeDeepInfra(
                token_delay=0.025, image_delay=1.5, image_size="full"
            ) as server:
                for match, text, reasoning in SCRIPTS[name]:
                    server.script_reply(text, match=match, reasoning=reasoning)
                env |= {"DEEPINFRA_BASE_URL": server.api_url, "DEEPINFRA_API_KEY": PLACEHOLDER_KEY}
                run_notebook(name, env)
    check(target, [PLACEHOLDER_KEY, os.environ.get("DEEPINFRA_API_KEY", "")])
    return target


def check(path: Path, secrets: list[str]) -> None:
    """Refuse a recording that holds a key, a scoped token (a JWT: ``eyJ``…) or an
    Authorization header."""
    text = path.read_text(encoding="utf-8")
    leaks = [s for s in secrets if s and s in text] + [
        w for w in ("Bearer", "uthorization") if w in text
    ]
    leaks += re.findall(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.", text)  # a JWT's first parts
    if leaks:
        path.unlink()
        raise SystemExit(
            f"{path.name} contained a secret or header ({len(leaks)} hits); deleted it."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--live", action="store_true", help="record against the real API")
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(SCRIPTS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(SCRIPTS)
    if unknown:
        parser.error(f"unknown example(s): {', '.join(sorted(unknown))}")
    for name in args.names or list(SCRIPTS):
        path = record(name, args.live)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
