"""Typed answers from the real llama.cpp server through our client and magics: its 500
refusing ``json_schema`` is recognised, JSON mode with the schema (a grammar) follows and
is remembered, and even the random-weight model's replies become typed columns over a
20-row map, pandas dtypes asserted (an inline spec, and a pydantic model)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pydantic
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from deepinfra_magic import AsyncDeepInfraClient, DeepInfraClient
from tests.llama.server import MODEL, LlamaServer

ROWS = 20
INLINE = "label: positive|negative|mixed, score: float, ok: bool, stars: int?"
INLINE_DTYPES = {"label": "category", "score": "Float64", "ok": "boolean", "stars": "Int64"}


class Review(pydantic.BaseModel):
    """Strings are bounded: the grammar does not bound a free string, which the random
    model never closes (see tests/llama/test_schema.py)."""

    summary: str = pydantic.Field(max_length=12)
    stars: int
    tags: list[Annotated[str, pydantic.StringConstraints(max_length=6)]] = pydantic.Field(
        max_length=2
    )
    liked: bool | None = None


REVIEW_DTYPES = {"summary": "string", "stars": "Int64", "tags": "object", "liked": "boolean"}


def dtypes(frame: pd.DataFrame, prefix: str = "") -> dict[str, str]:
    return {str(c).removeprefix(prefix): str(t) for c, t in frame.dtypes.items()}


def table() -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review {i}" for i in range(ROWS)]}, index=range(100, 120))


def test_chat_falls_back_to_json_mode_once_and_parses(
    llama: LlamaServer, no_key_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with DeepInfraClient() as client:
        first = client.chat(
            [{"role": "user", "content": "Label it"}], MODEL, stream=False, schema=INLINE,
            max_tokens=300, temperature=0,
        )  # fmt: skip
        assert client.json_mode_only(MODEL)
        with client.chat(
            [{"role": "user", "content": "Again"}], MODEL, schema=Review, max_tokens=300
        ) as stream:
            list(stream)
    assert first.parsed["label"] in ("positive", "negative", "mixed")
    assert isinstance(first.parsed["ok"], bool)
    assert stream.result is not None and isinstance(stream.result.parsed, Review)
    assert sum("JSON mode" in record.message for record in caplog.records) == 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(INLINE, INLINE_DTYPES), (Review, REVIEW_DTYPES)],
    ids=["inline", "pydantic"],
)
def test_library_map_gives_typed_columns_sync_and_async(
    llama: LlamaServer, no_key_env: Path, spec: Any, expected: dict[str, str]
) -> None:
    with DeepInfraClient() as client:
        result = client.map(
            table(), "Label: {text}", MODEL, schema=spec, max_tokens=300, temperature=0,
            concurrency=2,
        )  # fmt: skip
    frame = result.output()
    assert result.failed == 0 and list(frame.index) == list(range(100, 120))
    assert dtypes(frame) == expected
    first_field = next(iter(expected))
    assert frame[first_field].notna().all()
    if spec is INLINE:
        assert list(frame["label"].cat.categories) == ["positive", "negative", "mixed"]

    async def run() -> pd.DataFrame:
        async with AsyncDeepInfraClient() as client:
            done = await client.map(
                table(), "Label: {text}", MODEL, schema=spec, max_tokens=300, concurrency=2,
                resume=False,
            )  # fmt: skip
            return done.output()

    assert dtypes(asyncio.run(run())) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(INLINE, INLINE_DTYPES), (Review, REVIEW_DTYPES)],
    ids=["inline", "pydantic"],
)
def test_map_magic_in_a_shell_gives_typed_columns(
    ip: InteractiveShell, llama: LlamaServer, spec: Any, expected: dict[str, str]
) -> None:
    ip.run_line_magic("config", f"DeepInfraMagics.base_url = {llama.url!r}")
    frame = table()
    ip.user_ns.update(reviews=frame, Review=Review)
    name = "Review" if spec is Review else f"'{INLINE}'"
    with capture_output() as captured:
        ip.run_cell_magic(
            "deepinfra_map",
            f"reviews --column label -o typed -m {MODEL} --max-tokens 300 --schema {name}",
            "Label: {text}",
        )
    shown = captured.stdout + "".join(o.data.get("text/plain", "") for o in captured.outputs)
    assert f"{ROWS} answered" in shown and "failed" not in shown
    typed = ip.user_ns["typed"]
    assert dtypes(typed) == expected and list(typed.index) == list(range(100, 120))
    assert dtypes(frame[[c for c in frame.columns if c != "text"]], "label_") == expected
    with capture_output() as captured:
        ip.run_cell_magic("deepinfra", f"-m {MODEL} --max-tokens 300 --schema {name} -o one", "Hi")
    assert ip.user_ns["one"].parsed is not None
    assert "| " in "".join(o.data.get("text/markdown", "") for o in captured.outputs)
