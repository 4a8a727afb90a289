"""Typed answers (deepinfra_magic/schema.py): specs of every kind, what is sent, how replies
are parsed and repaired, and the typed frame, dtypes asserted."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import subprocess
import sys
from typing import Any, Literal, TypedDict

import pandas as pd
import pydantic
import pytest

from deepinfra_magic import InvalidArgumentError, SchemaError
from deepinfra_magic.errors import InvalidResponseError
from deepinfra_magic.schema import (
    INLINE_SYNTAX,
    Field,
    Schema,
    SchemaValidationError,
    refuses_json_schema,
)

MOODS = ("positive", "negative", "mixed")
INLINE = "label: positive|negative|mixed, score: float, reasons: list[str], ok: bool"


class Mood(enum.Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    MIXED = "mixed"


class PydanticReview(pydantic.BaseModel):
    mood: Mood
    score: float
    tags: list[str]
    when: datetime.date | None = None
    stars: int = 3


@dataclasses.dataclass
class DataclassReview:
    mood: Mood
    count: int
    when: datetime.date | None = None


class DictReview(TypedDict, total=False):
    label: Literal["good", "bad"]
    words: list[str]


JSON_SCHEMA = {
    "title": "Person",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
}

NAMESPACE: dict[str, Any] = {
    "PydanticReview": PydanticReview,
    "DataclassReview": DataclassReview,
    "DictReview": DictReview,
    "Mood": Mood,
    "person_schema": JSON_SCHEMA,
    "not_a_schema": 42,
}


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


# -- specs -------------------------------------------------------------------------------------


def test_inline_spec_gives_a_strict_schema_with_choices_lists_and_optionals() -> None:
    schema = Schema.from_spec(INLINE + ", when: date?, note?", NAMESPACE)
    assert schema.name == "answer"
    assert schema.json_schema == {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative", "mixed"]},
            "score": {"type": "number"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "ok": {"type": "boolean"},
            "when": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["label", "score", "reasons", "ok", "when", "note"],
        "additionalProperties": False,
    }


def test_inline_spec_accepts_quotes_bare_names_spaces_and_int() -> None:
    schema = Schema.from_spec("'name, age int, tags: list[a|b]?'")
    assert [(f.name, f.kind, f.optional) for f in schema.fields()] == [
        ("name", "str", False),
        ("age", "int", False),
        ("tags", "list", True),
    ]
    tags = schema.json_schema["properties"]["tags"]["anyOf"][0]
    assert tags == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}


@pytest.mark.parametrize(
    ("spec", "name", "first_field"),
    [
        ("PydanticReview", "PydanticReview", Field("mood", "choice", False, MOODS)),
        ("DataclassReview", "DataclassReview", Field("mood", "choice", False, MOODS)),
        ("DictReview", "DictReview", Field("label", "choice", True, ("good", "bad"))),
        ("Mood", "Mood", Field("value", "choice", False, MOODS)),
        ("person_schema", "person_schema", Field("name", "str", False)),
    ],
)  # fmt: skip
def test_names_in_the_namespace_resolve_to_each_kind(
    spec: str, name: str, first_field: Field
) -> None:
    schema = Schema.from_spec(spec, NAMESPACE)
    assert schema.name == name
    assert schema.fields()[0] == first_field
    assert schema.json_schema["type"] == "object"
    assert schema.json_schema["additionalProperties"] is False
    assert schema.json_schema["required"] == list(schema.json_schema["properties"])


def test_objects_are_accepted_directly_for_the_library() -> None:
    for spec in (PydanticReview, DataclassReview, DictReview, Mood, JSON_SCHEMA):
        assert Schema.from_spec(spec).fields()
    inline = Schema.from_spec(INLINE)
    assert Schema.from_spec(inline) is inline
    assert Schema.from_spec(JSON_SCHEMA).name == "Person"  # the title, when given directly


def test_json_schema_dict_optional_properties_become_nullable_and_required() -> None:
    schema = Schema.from_spec("person_schema", NAMESPACE)
    assert schema.json_schema["required"] == ["name", "age"]
    assert schema.json_schema["properties"]["age"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}]
    }
    assert JSON_SCHEMA["required"] == ["name"]  # the user's dict is not changed


def test_pydantic_schema_is_made_strict_including_nested_definitions() -> None:
    schema = Schema.from_spec(PydanticReview)
    assert schema.json_schema["required"] == ["mood", "score", "tags", "when", "stars"]
    stars = schema.json_schema["properties"]["stars"]
    assert {"type": "null"} in stars["anyOf"]
    assert schema.json_schema["$defs"]["Mood"]["enum"] == ["positive", "negative", "mixed"]


def test_a_non_object_json_schema_is_wrapped_as_value() -> None:
    schema = Schema.from_spec({"type": "string", "enum": ["yes", "no"]})
    assert list(schema.json_schema["properties"]) == ["value"]
    assert schema.parse('{"value": "no"}') == "no"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "--schema is empty."),
        ("Review", "No 'Review' is defined in the notebook."),
        ("not_a_schema", "'not_a_schema' is a value of type int, not a pydantic model"),
        ("a: flaot", "unknown type 'flaot' in 'a: flaot'"),
        ("a, a", "names the field 'a' twice"),
        ("1st: int", "'1st' is not a field name"),
        ("a: x|x", "repeats a choice"),
        ("a: int,, b", "has an empty field"),
        ("a: list[decimal]", "unknown type 'decimal'"),
    ],
)
def test_bad_specs_are_one_line_errors_that_show_the_inline_syntax(
    spec: str, fragment: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        Schema.from_spec(spec, NAMESPACE)
    message = str(caught.value)
    assert fragment in message
    assert INLINE_SYNTAX in message and "\n" not in message
    assert isinstance(caught.value, InvalidArgumentError) and isinstance(caught.value, ValueError)


def test_an_object_that_is_no_spec_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="not a pydantic model, dataclass, TypedDict"):
        Schema.from_spec(3.5)

    @dataclasses.dataclass
    class Open:
        anything: dict[str, Any]

    with pytest.raises(SchemaError, match="too open for a typed answer"):
        Schema.from_spec(Open)


def test_importing_the_module_loads_neither_pydantic_nor_pandas() -> None:
    code = (
        "import sys, deepinfra_magic.schema as s;"
        "s.Schema.from_spec('a: int').parse('{\"a\": 1}');"
        "print('pydantic' in sys.modules, 'pandas' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["False", "False"]


# -- what is sent ------------------------------------------------------------------------------


def test_response_format_and_the_json_mode_fallback() -> None:
    schema = Schema.from_spec(INLINE)
    assert schema.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema.json_schema, "strict": True},
    }
    fallback = schema.fallback_response_format()
    assert fallback == {"type": "json_object", "schema": schema.json_schema}
    message = schema.fallback_system_message()
    stated = message[message.index("{") :]
    assert json.loads(stated) == schema.json_schema and "\n" not in message


def test_fingerprint_is_stable_and_changes_with_the_schema() -> None:
    first = Schema.from_spec(INLINE).fingerprint
    assert first == Schema.from_spec(INLINE.replace(", ", ",")).fingerprint
    assert len(first) == 16
    assert first != Schema.from_spec(INLINE + ", extra: int").fingerprint
    code = "from deepinfra_magic.schema import Schema as S; print(S.from_spec(%r).fingerprint)"
    code %= INLINE
    other_process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other_process == first


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (400, {"error": {"message": "json_schema is not supported", "param": None}}, True),
        (422, {"detail": [{"loc": ["body", "response_format", "type"]}]}, True),
        (400, b'{"error": {"param": "response_format"}}', True),
        (500, "literal_error ('body', 'response_format', 'type') input 'json_schema'", True),
        (500, "response_format broke the server", False),
        (400, {"error": {"message": "max_tokens must be positive"}}, False),
        (404, "response_format", False),
        (429, "json_schema", False),
    ],
)
def test_refuses_json_schema(status: int, body: Any, refused: bool) -> None:
    assert refuses_json_schema(status, body) is refused


# -- what comes back ---------------------------------------------------------------------------


def test_parse_gives_the_typed_value_of_each_kind() -> None:
    review = Schema.from_spec(PydanticReview).parse(
        '{"mood": "mixed", "score": 2, "tags": ["x"], "when": "2026-12-07", "stars": null}'
    )
    assert review == PydanticReview(
        mood=Mood.MIXED, score=2.0, tags=["x"], when=datetime.date(2026, 12, 7), stars=3
    )
    assert Schema.from_spec(DataclassReview).parse(
        '{"mood": "negative", "count": 4, "when": null}'
    ) == DataclassReview(Mood.NEGATIVE, 4, None)
    assert Schema.from_spec(DictReview).parse('{"label": "good"}') == {
        "label": "good",
        "words": None,
    }
    assert Schema.from_spec(Mood).parse('{"value": "positive"}') is Mood.POSITIVE
    assert Schema.from_spec(JSON_SCHEMA).parse('{"name": "Ada"}') == {"name": "Ada", "age": None}
    inline = Schema.from_spec(INLINE + ", when: date")
    assert inline.parse(
        '{"ok": true, "reasons": [], "score": 1, "label": "mixed", "when": "2026-01-31"}'
    ) == {
        "label": "mixed",
        "score": 1.0,
        "reasons": [],
        "ok": True,
        "when": datetime.date(2026, 1, 31),
    }


def test_a_null_takes_a_pydantic_default_but_stays_null_where_the_field_has_none() -> None:
    class Nullable(pydantic.BaseModel):
        must: int | None
        maybe: int = 7

    schema = Schema.from_spec(Nullable)
    assert schema.parse('{"must": null, "maybe": null}') == Nullable(must=None, maybe=7)
    assert schema.parse('{"maybe": 1}') == Nullable(must=None, maybe=1)  # missing = null


def test_parse_reads_json_inside_a_code_fence() -> None:
    assert Schema.from_spec("a: int").parse('```json\n{"a": 1}\n```') == {"a": 1}


def test_not_json_is_a_schema_validation_error_that_keeps_the_raw_text() -> None:
    with pytest.raises(SchemaValidationError) as caught:
        Schema.from_spec(INLINE).parse("Sure! {label: positive")
    error = caught.value
    assert str(error).startswith("The answer is not valid JSON (Expecting value: line 1 column 1")
    assert error.raw_text == "Sure! {label: positive"
    assert isinstance(error, InvalidResponseError)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('{"label": "neutral", "score": 1, "reasons": [], "ok": true}',
         '$.label: "neutral" is not one of "positive", "negative", "mixed"'),
        ('{"label": "mixed", "score": "high", "reasons": [], "ok": true}',
         '$.score: expected a number, got "high"'),
        ('{"label": "mixed", "score": 1, "reasons": [1], "ok": true}',
         "$.reasons[0]: expected a string, got 1"),
        ('{"label": "mixed", "score": 1, "reasons": [], "ok": "yes"}',
         '$.ok: expected true or false, got "yes"'),
        ('{"label": "mixed", "score": 1, "reasons": []}', "$.ok: missing"),
        ('{"label": "mixed", "score": 1, "reasons": [], "ok": true, "x": 0}',
         "$.x: not in the schema"),
        ('[1, 2]', "$: expected an object, got [1, 2]"),
    ],
)  # fmt: skip
def test_validator_messages_name_the_path_and_the_fix(reply: str, problem: str) -> None:
    with pytest.raises(SchemaValidationError) as caught:
        Schema.from_spec(INLINE).parse(reply)
    assert caught.value.problems == [problem]
    assert str(caught.value) == f"The answer does not match the schema: {problem}."


def test_validator_checks_dates_integers_and_nullability() -> None:
    schema = Schema.from_spec("when: date, n: int, m: int?")
    with pytest.raises(SchemaValidationError) as caught:
        schema.parse('{"when": "2026-02-30", "n": 1.5, "m": "x"}')
    assert caught.value.problems == [
        '$.when: "2026-02-30" is not a date in YYYY-MM-DD form',
        "$.n: expected an integer, got 1.5",
        '$.m: expected an integer, got "x"',
    ]
    assert schema.parse('{"when": "2026-02-28", "n": 2.0}') == {
        "when": datetime.date(2026, 2, 28),
        "n": 2,
        "m": None,
    }


def test_many_problems_are_counted_not_all_quoted() -> None:
    schema = Schema.from_spec(", ".join(f"f{i}: int" for i in range(10)))
    with pytest.raises(SchemaValidationError) as caught:
        schema.parse("{}")
    assert len(caught.value.problems) == 10
    assert str(caught.value).endswith("$.f5: missing; and 4 more.")


def test_pydantic_constraints_beyond_the_schema_are_reported_the_same_way() -> None:
    class Bounded(pydantic.BaseModel):
        n: int

        @pydantic.field_validator("n")
        @classmethod
        def small(cls, value: int) -> int:
            if value > 10:
                raise ValueError("at most 10")
            return value

    with pytest.raises(SchemaValidationError, match=r"\$\.n: Value error, at most 10"):
        Schema.from_spec(Bounded).parse('{"n": 11}')


def test_repair_messages_send_back_the_reply_and_the_error() -> None:
    schema = Schema.from_spec(INLINE)
    raw = '{"label": "neutral", "score": 1, "reasons": [], "ok": true}'
    with pytest.raises(SchemaValidationError) as caught:
        schema.parse(raw)
    assert schema.repair_messages(raw, caught.value) == [
        {"role": "assistant", "content": raw},
        {
            "role": "user",
            "content": 'The answer does not match the schema: $.label: "neutral" is not one '
            'of "positive", "negative", "mixed". Reply again with only the corrected JSON '
            "object, matching the schema exactly.",
        },
    ]


# -- the frame ---------------------------------------------------------------------------------


def test_fields_carry_the_pandas_dtype_plan() -> None:
    schema = Schema.from_spec(INLINE + ", n: int, when: date, note: str?")
    assert [(f.name, f.dtype) for f in schema.fields()] == [
        ("label", "category"),
        ("score", "Float64"),
        ("reasons", "object"),
        ("ok", "boolean"),
        ("n", "Int64"),
        ("when", "datetime64[ns]"),
        ("note", "string"),
    ]
    assert schema.fields()[0].categories == ("positive", "negative", "mixed")


def test_to_frame_types_every_column_and_fills_failed_rows_and_missing_fields_with_na() -> None:
    schema = Schema.from_spec(INLINE + ", n: int?, when: date?, note: str?")
    good = schema.parse(
        '{"label": "negative", "score": 0.5, "reasons": ["dull"], "ok": false, "n": 3, '
        '"when": "2026-12-07", "note": "meh"}'
    )
    sparse = schema.parse('{"label": "mixed", "score": 1, "reasons": [], "ok": true}')
    frame = schema.to_frame([good, None, sparse], index=["r1", "r2", "r3"], prefix="sentiment")
    assert dtypes(frame) == {
        "sentiment_label": "category",
        "sentiment_score": "Float64",
        "sentiment_reasons": "object",
        "sentiment_ok": "boolean",
        "sentiment_n": "Int64",
        "sentiment_when": "datetime64[ns]",
        "sentiment_note": "string",
    }
    assert list(frame.index) == ["r1", "r2", "r3"]
    assert list(frame["sentiment_label"].cat.categories) == ["positive", "negative", "mixed"]
    assert frame.loc["r1", "sentiment_n"] == 3
    assert frame.loc["r1", "sentiment_when"] == pd.Timestamp("2026-12-07")
    assert frame.loc["r1", "sentiment_reasons"] == ["dull"]
    assert frame.loc["r2"].isna().all()  # the failed row: every field <NA> (NaT for dates)
    assert frame.loc["r3", ["sentiment_n", "sentiment_when", "sentiment_note"]].isna().all()
    assert frame.loc["r2", "sentiment_score"] is pd.NA
    assert frame.loc["r2", "sentiment_ok"] is pd.NA
    assert frame.loc["r3", "sentiment_note"] is pd.NA


def test_to_frame_without_prefix_and_for_enum_pydantic_and_dataclass_values() -> None:
    inline = Schema.from_spec("a: int, b: x|y")
    assert list(inline.to_frame([inline.parse('{"a": 1, "b": "y"}')]).columns) == ["a", "b"]

    mood = Schema.from_spec(Mood)
    frame = mood.to_frame([Mood.MIXED, None, Mood.POSITIVE], prefix="sentiment")
    assert dtypes(frame) == {"sentiment": "category"}
    assert list(frame["sentiment"].cat.categories) == ["positive", "negative", "mixed"]
    assert frame["sentiment"].tolist()[0] == "mixed" and pd.isna(frame["sentiment"][1])
    assert frame["sentiment"].value_counts()["positive"] == 1

    pyd = Schema.from_spec(PydanticReview)
    frame = pyd.to_frame([PydanticReview(mood=Mood.POSITIVE, score=1, tags=[]), None])
    assert dtypes(frame) == {
        "mood": "category",
        "score": "Float64",
        "tags": "object",
        "when": "datetime64[ns]",
        "stars": "Int64",
    }
    assert frame["stars"].tolist() == [3, pd.NA]

    dc = Schema.from_spec(DataclassReview)
    frame = dc.to_frame([DataclassReview(Mood.NEGATIVE, 2, datetime.date(2026, 1, 2))])
    assert dtypes(frame) == {"mood": "category", "count": "Int64", "when": "datetime64[ns]"}
    assert frame["mood"][0] == "negative"


def test_to_frame_of_no_rows_keeps_the_typed_columns() -> None:
    frame = Schema.from_spec(INLINE).to_frame([])
    assert len(frame) == 0
    assert dtypes(frame)["label"] == "category" and dtypes(frame)["ok"] == "boolean"


def test_request_parts_send_json_schema_or_state_the_schema_in_the_system_message() -> None:
    schema = Schema.from_spec("label: a|b")
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    messages, response_format = schema.request_parts(asked, json_mode=False)
    assert messages == asked and response_format["type"] == "json_schema"
    messages, response_format = schema.request_parts(asked, json_mode=True)
    assert response_format == schema.fallback_response_format()
    assert (
        messages[0]["content"].startswith("Be brief.\n\n")
        and "JSON Schema:" in messages[0]["content"]
    )
    assert asked[0]["content"] == "Be brief."  # the caller's messages are not changed
    messages, _ = schema.request_parts([{"role": "user", "content": "Hi"}], json_mode=True)
    assert [m["role"] for m in messages] == ["system", "user"]


def test_markdown_row_is_a_one_row_table_with_fields_as_columns() -> None:
    schema = Schema.from_spec("label: a|b, tags: list[str], ok: bool?")
    value = schema.parse('{"label": "a", "tags": ["x", "y"], "ok": null}')
    assert schema.markdown_row(value).splitlines() == [
        "| label | tags | ok |",
        "|---|---|---|",
        "| a | x, y |  |",
    ]
