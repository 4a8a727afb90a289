"""5. Images: wall time for n = 1, 4, 8 images, each taking the server a fixed time.

The fake server spends ``IMAGE_DELAY`` seconds on every image request. Timed, in
interleaved rounds, through ``DeepInfraClient.generate_image(..., n=n)`` and through
``%deepinfra_image -n N`` (the images shown through a kernel-like publisher); each n is
compared with n = 1 on the same path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .common import IMAGE_MODEL, Row, fake_server, magic_shell, median, server_log

IMAGE_DELAY = 0.5
COUNTS = (1, 4, 8)
ROUNDS = 3
GOAL_RATIO = 1.3
PROMPT = "a lighthouse at dusk"


def _library(url: str) -> Callable[[int], None]:
    from deepinfra_magic import DeepInfraClient

    client = DeepInfraClient(base_url=f"{url}/v1/openai", catalog_disk_cache=False)

    def run(n: int) -> None:
        result = client.generate_image(PROMPT, IMAGE_MODEL, n=n)
        assert len(result.images) == n

    return run


def _magic(url: str) -> Callable[[int], None]:
    shell, magics, _ = magic_shell(url)

    def run(n: int) -> None:
        shell.run_line_magic("deepinfra_image", f"-m {IMAGE_MODEL} -n {n} {PROMPT}")
        assert magics.last_images is not None and len(magics.last_images.images) == n

    return run


def measure() -> list[Row]:
    """Rows 5: n = 4 and n = 8 against n = 1, through the library and the magic."""
    with fake_server(image_delay=IMAGE_DELAY) as url:
        paths = {"library": _library(url), "magic": _magic(url)}
        for run in paths.values():
            run(1)  # warm-up: imports, catalog, a pooled connection
        seconds: dict[str, dict[int, list[float]]] = {p: {n: [] for n in COUNTS} for p in paths}
        for _ in range(ROUNDS):
            for n in COUNTS:
                for name, run in paths.items():
                    started = time.perf_counter()
                    run(n)
                    seconds[name][n].append(time.perf_counter() - started)
        peak = server_log(url)["peak_concurrency"]
    rows = []
    for name, label in (("library", "`generate_image`"), ("magic", "`%deepinfra_image`")):
        wall = {n: median(values) for n, values in seconds[name].items()}
        for n in COUNTS[1:]:
            ratio = wall[n] / wall[1]
            rows.append(
                Row(
                    f"5. Images n={n} vs n=1, {label}",
                    f"{wall[n]:.2f} s",
                    f"{wall[1]:.2f} s (n=1)",
                    f"{ratio:.2f}×",
                    f"≤ {GOAL_RATIO:g}×" if n == 4 else "— (report)",
                    ratio <= GOAL_RATIO if n == 4 else None,
                    {
                        "seconds": seconds[name],
                        "image_delay": IMAGE_DELAY,
                        "server_peak_concurrency": peak,
                    },
                )
            )
    rows[-1].note = (
        f"The server takes {IMAGE_DELAY} s per image request; it saw at most {peak} "
        f"requests at once. Median of {ROUNDS} rounds."
    )
    return rows
