"""Read what each Markdown renderer a user meets shows for a ``text/markdown`` output.

Every reader returns the rendered text of each Markdown string, with each piece of typeset
math replaced by ``⟦…⟧`` (its TeX where the renderer keeps it, else its MathML text), so a
test can tell a price that reads ``$0.23`` from one that became math or kept a backslash;
an image that takes room (a broken-image icon) reads ``⟦img⟧``.

* `read_vscode`: VS Code's notebook renderer, approximated by npm ``markdown-it`` with
  ``@vscode/markdown-it-katex`` (a node script over the token stream, no browser).
* `read_nbconvert`: ``HTMLExporter`` (lab template) opened from a file in Chromium with
  every non-file request refused; with ``mathjax=True`` its MathJax 2 comes from the npm
  ``mathjax@2`` package (the version nbconvert's default CDN URL names), else it is offline.
* `read_jupyter`: JupyterLab, Notebook 7 and Voilà, all served by one Jupyter server.

The npm packages live in ``build/node`` (`ensure_node_packages` installs them from the npm
registry the first time, pinned by ``tests/node/package.json``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import nbformat

from .jupyterlab import REPO_ROOT, JupyterLabServer, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

NODE_DIR = REPO_ROOT / "build" / "node"
NODE_SOURCES = REPO_ROOT / "tests" / "node"
MATHJAX2 = NODE_DIR / "node_modules" / "mathjax2" / "MathJax.js"
# The configuration nbconvert's default mathjax_url asks for.
MATHJAX2_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"

Frontend = Literal["lab", "notebook7", "voila"]

# Replace typeset math (MathJax 2, MathJax 3/4, KaTeX) by ⟦TeX or MathML text⟧, then read
# the text a person sees (innerText) of each rendered Markdown element under the selector.
READ_JS = r"""(selector) => {
  const mark = (el, text) => el.replaceWith(document.createTextNode('⟦' + text.trim() + '⟧'));
  for (const script of document.querySelectorAll('script[type^="math/tex"]')) {
    const frame = document.getElementById(script.id + '-Frame');
    if (frame) { (frame.closest('.MathJax_Display') || frame).remove(); }
    mark(script, script.textContent);
  }
  for (const el of document.querySelectorAll('.MathJax_Preview')) { el.remove(); }
  for (const el of document.querySelectorAll('mjx-container')) {
    const mml = el.querySelector('mjx-assistive-mml');
    mark(el, (mml || el).textContent);
  }
  for (const el of document.querySelectorAll('.katex')) {
    const tex = el.querySelector('annotation[encoding="application/x-tex"]');
    mark(el, (tex || el).textContent);
  }
  const outputs = Array.from(document.querySelectorAll(selector));
  for (const img of outputs.flatMap((el) => Array.from(el.querySelectorAll('img')))) {
    if (img.getBoundingClientRect().width > 0) { mark(img, 'img'); }
  }
  return outputs.map((el) => el.innerText.trim());
}"""

# Every Markdown output of the page has typeset its math (each text holds ``$x^2$``).
_TYPESET_JS = """([selector, count]) => {
  const outputs = Array.from(document.querySelectorAll(selector));
  const typeset = 'mjx-container, script[type^="math/tex"]';  // MathJax 3/4, MathJax 2
  return outputs.length === count && outputs.every((el) => el.querySelector(typeset));
}"""
# Every Markdown output of the page has rendered (Voilà runs the cells, then shows them).
_RENDERED_JS = """([selector, count]) => {
  const outputs = Array.from(document.querySelectorAll(selector));
  return outputs.length === count && outputs.every((el) => el.innerText.trim() !== '');
}"""


def ensure_node_packages() -> Path:
    """Install the pinned npm packages into ``build/node`` unless they are there; its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (scripts/ensure-node installs Node.js and npm)")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    wanted = (NODE_SOURCES / "package.json").read_text(encoding="utf-8")
    stamp = NODE_DIR / "installed-package.json"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return NODE_DIR
    (NODE_DIR / "package.json").write_text(wanted, encoding="utf-8")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"],
        cwd=NODE_DIR,
        check=True,
        timeout=600,
    )
    stamp.write_text(wanted, encoding="utf-8")
    return NODE_DIR


def read_vscode(markdowns: Sequence[str]) -> list[str]:
    """Text of each Markdown string as markdown-it + @vscode/markdown-it-katex renders it."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (scripts/ensure-node installs it)")
    result = subprocess.run(
        [node, str(NODE_SOURCES / "read_markdown_it.js"), str(ensure_node_packages())],
        input=json.dumps(list(markdowns)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    readings: list[str] = json.loads(result.stdout)
    return readings


def markdown_notebook(markdowns: Sequence[str]) -> nbformat.NotebookNode:
    """A notebook with one code cell per string, displaying it as ``text/markdown``.

    The saved outputs are what Lab, Notebook 7 and nbconvert show; Voilà runs the code.
    """
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for text in markdowns:
        cell = nbformat.v4.new_code_cell(
            f"from IPython.display import Markdown\nMarkdown({text!r})", execution_count=1
        )
        cell.outputs = [
            nbformat.v4.new_output(
                "execute_result",
                data={"text/markdown": text, "text/plain": text},
                execution_count=1,
            )
        ]
        notebook.cells.append(cell)
    return notebook


def block_network(page: Page) -> list[str]:
    """Refuse every request that is not a file:// one; return the list of refused URLs."""
    refused: list[str] = []

    def route(route_: object) -> None:
        from playwright.sync_api import Route

        assert isinstance(route_, Route)
        url = route_.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route_.continue_()
        else:
            refused.append(url)
            route_.abort()

    page.route("**/*", route)
    return refused


def export_html(notebook: nbformat.NotebookNode, *, mathjax_url: str | None = None) -> str:
    """The notebook as nbconvert's default HTML export (lab template), optionally re-pointed."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter() if mathjax_url is None else HTMLExporter(mathjax_url=mathjax_url)
    html, _ = exporter.from_notebook_node(notebook)
    return html


def read_nbconvert(
    page: Page, markdowns: Sequence[str], folder: Path, *, mathjax: bool, shot: str
) -> list[str]:
    """Text of each string in nbconvert's HTML opened offline, with a local MathJax or none
    (screenshot ``shot`` taken before the reading marks the math)."""
    url = (MATHJAX2.as_uri() + MATHJAX2_CONFIG) if mathjax else None
    html = export_html(markdown_notebook(markdowns), mathjax_url=url)
    target = folder / ("with-mathjax.html" if mathjax else "offline.html")
    target.write_text(html, encoding="utf-8")
    block_network(page)
    page.goto(target.as_uri())
    if mathjax:
        page.wait_for_function("() => window.MathJax && window.MathJax.isReady")
        page.evaluate("() => new Promise((done) => MathJax.Hub.Queue(() => done(true)))")
    save_screenshot(page, shot, whole_notebook=False)
    readings: list[str] = page.evaluate(READ_JS, ".jp-RenderedMarkdown")
    return readings


def frontend_url(server: JupyterLabServer, frontend: Frontend, path: str) -> str:
    """URL of ``path`` (relative to the server root) in the given frontend."""
    route = {"lab": "lab/tree", "notebook7": "notebooks", "voila": "voila/render"}[frontend]
    return f"{server.url}{route}/{path}?token={server.token}"


def read_jupyter(
    page: Page,
    server: JupyterLabServer,
    frontend: Frontend,
    markdowns: Sequence[str],
    name: str,
    *,
    math: bool = True,
) -> list[str]:
    """Text of each string as ``frontend`` shows it, once every output has rendered
    (screenshot ``renderers-<name>`` taken before the reading marks the math).

    With ``math`` every string must hold some math, and the wait is for each output's
    typeset math. Lab and Notebook 7 bundle MathJax; Voilà loads it from a CDN (unreachable
    here: read it with ``math=False``) or from `voila_mathjax_config`'s local copy.
    """
    path = f"{name}.ipynb"
    nbformat.write(markdown_notebook(markdowns), server.root_dir / path)
    page.goto(frontend_url(server, frontend, path))
    selector = ".jp-OutputArea-output.jp-RenderedMarkdown"
    wait = _TYPESET_JS if math else _RENDERED_JS
    page.wait_for_function(wait, arg=[selector, len(markdowns)], timeout=120_000)
    if page.evaluate("() => Boolean(window.MathJax && window.MathJax.Hub)"):  # MathJax 2
        page.evaluate("() => new Promise((done) => MathJax.Hub.Queue(() => done(true)))")
    save_screenshot(page, f"renderers-{name}", whole_notebook=frontend == "lab")
    readings: list[str] = page.evaluate(READ_JS, selector)
    return readings


def voila_mathjax_config(config_dir: Path) -> None:
    """Point Voilà at npm's MathJax 2 (served by the Jupyter server from ``build/node``)
    instead of its CDN: a ``jupyter_server_config.json`` in the server's config dir."""
    config_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "ServerApp": {
            "extra_static_paths": [str(ensure_node_packages() / "node_modules")],
            "tornado_settings": {"mathjax_url": "/static/mathjax2/MathJax.js"},
        }
    }
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(settings), "utf-8")
