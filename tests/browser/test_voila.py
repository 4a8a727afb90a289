"""The workshop in Voilà, as a class sees a dashboard: every section renders, and the
"Errors you will meet" lessons show their one-line errors (Voilà drops stderr, so the
line must be display data; see ``_parsers.show_error_line``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .jupyterlab import JupyterLabFactory, save_screenshot
from .renderers import frontend_url

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Voilà shows outputs only (sources stripped); the three lessons' lines are among them.
_ERROR_LINES_JS = r"""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
  .map((el) => el.innerText.trim()).filter((text) => /^[A-Za-z]+Error: /.test(text))"""


def test_voila_shows_the_workshop_errors_below_their_notices(
    page: Page, jupyterlab_factory: JupyterLabFactory
) -> None:
    server = jupyterlab_factory({"DEEPINFRA_MAGIC_REPLAY_SPEED": "0"})
    for name in ("workshop.ipynb", "workshop.recording.json"):
        shutil.copyfile(EXAMPLES / name, server.root_dir / name)
    page.goto(frontend_url(server, "voila", "workshop.ipynb"))
    page.wait_for_function(f"() => ({_ERROR_LINES_JS})().length >= 3", timeout=240_000)
    page.wait_for_function(  # the last section (after the lessons) has rendered
        "() => document.body.innerText.includes('Others you may see')", timeout=60_000
    )
    page.get_by_role("heading", name="5. Errors you will meet").scroll_into_view_if_needed()
    save_screenshot(page, "voila-workshop-errors", whole_notebook=False)

    lines: list[str] = page.evaluate(_ERROR_LINES_JS)
    assert [line.split(":", 1)[0] for line in lines] == [
        "ModelNotFoundError",
        "UsageError",
        "UsageError",
    ]
    assert all("\n" not in line for line in lines)
    text = page.evaluate("() => document.body.innerText")
    lessons = text[text.index("Errors you will meet") :]
    # The failed chat's notice points below, and its error line is what comes next.
    notice = "No reply: the request failed (the error is below)"
    assert notice in lessons
    after = lessons[lessons.index(notice) + len(notice) :].lstrip(".").lstrip()
    assert re.match(r"ModelNotFoundError: ", after), after[:200]
    # Voilà showed the images and replies of the sections before, from the recording.
    assert page.locator(".jp-OutputArea-output img").count() >= 4
