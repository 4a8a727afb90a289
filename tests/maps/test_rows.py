"""``maps/rows.py`` alone: what a row is read from, how a template fails before anything
is sent, and the estimate, at the catalog's prices through ``ModelInfo.cost``."""

from __future__ import annotations

import pandas as pd
import pytest

from deepinfra_magic.catalog import ModelInfo
from deepinfra_magic.errors import InvalidArgumentError
from deepinfra_magic.maps import MapJob, plan_map
from deepinfra_magic.maps.rows import read_rows, render
from deepinfra_magic.types import Usage


def _plan(data: object, template: str = "{}", max_tokens: int | None = 10) -> MapJob:
    return plan_map(
        data, template, "m", system=None, temperature=None, max_tokens=max_tokens,
        params={}, store=None,
    )  # fmt: skip


def test_rows_come_from_frames_series_mappings_and_lists() -> None:
    frame = read_rows(pd.DataFrame({"a": [1, 2]}, index=["x", "y"]))
    assert frame.kind == "dataframe" and frame.items == [{"a": 1}, {"a": 2}]
    assert frame.labels == ["x", "y"]
    assert read_rows(pd.Series([5], index=[9])).labels == [9]
    assert read_rows({"k": "v"}).items == ["v"] and read_rows({"k": "v"}).labels == ["k"]
    assert read_rows(iter(["p", "q"])).labels == [0, 1]


@pytest.mark.parametrize("data", ["a string", b"bytes", None, 42])
def test_data_that_is_not_rows_is_an_argument_error(data: object) -> None:
    with pytest.raises(InvalidArgumentError, match="DATA must be a DataFrame"):
        read_rows(data)


@pytest.mark.parametrize(
    ("template", "item", "columns", "says"),
    [
        ("{body}", {"text": "a"}, ("text",), r"\{body\}, which is not a column \(columns: text\)"),
        ("{nope}", {"k": 1}, (), r"is not a key of the rows \(keys: k\)"),
        ("{name}", "plain", (), r"use \{\} or \{item\}"),
        ("{", "plain", (), r"cannot be read"),
    ],
)
def test_a_template_mistake_says_what_to_write(
    template: str, item: object, columns: tuple[str, ...], says: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        render(template, item, columns)


def test_an_empty_template_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="The template is empty"):
        _plan(["a"], "  ")


def test_the_estimate_prices_the_missing_rows_with_the_catalog() -> None:
    job = _plan(["abcd" * 10, "efgh" * 10])
    info = ModelInfo(
        "m", "text", pricing={"cents_per_input_token": 1e-4, "cents_per_output_token": 2e-4}
    )
    estimate = job.estimate(info)
    assert estimate.rows == 2 and estimate.max_completion_tokens == 20
    usage = Usage(estimate.prompt_tokens, 20, estimate.prompt_tokens + 20)
    assert estimate.dollars == pytest.approx(info.cost(usage))
    assert job.estimate(ModelInfo("m", "text")).dollars is None
    assert job.estimate(None).dollars is None
