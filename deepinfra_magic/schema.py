"""Typed answers: a schema from a spec, the ``response_format`` it sends, and parsing replies.

Rules this module keeps:

- Sans-I/O: it builds request fragments and reads reply text; it never sends anything.
- Light: no pydantic or pandas import at module level. pydantic is only *used* when the
  spec already is a pydantic model (so it is imported already, and looked up in
  ``sys.modules``); pandas is imported by :meth:`Schema.to_frame` alone.
- Every spec becomes one strict-mode JSON Schema (``additionalProperties: false``, every
  property in ``required``, optional ones nullable), whose root is an object: a spec whose
  answer is not an object (an ``Enum``, a JSON Schema of a string) is wrapped as the one
  property ``value`` and unwrapped by :meth:`Schema.parse`.
- Mistakes in a spec are :class:`~deepinfra_magic.errors.SchemaError`, one line showing the
  inline syntax; a reply that does not fit is :class:`SchemaValidationError`, whose message
  is written to be sent back to the model as the one repair request.
- The pandas dtype plan (:meth:`Schema.fields`) and the frame follow issue #21: int → Int64,
  float → Float64, bool → boolean, a choice or Enum → category with exactly the declared
  categories in order, str → string, date → datetime64[ns], anything else → object.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import hashlib
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidResponseError, SchemaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "INLINE_SYNTAX",
    "Field",
    "Schema",
    "SchemaValidationError",
    "refuses_json_schema",
]

INLINE_SYNTAX = "'label: positive|negative|mixed, score: float, reasons: list[str], ok: bool?'"
"""The example every spec error shows (bare name = str, ``a|b`` a choice, ``?`` optional)."""

_HOW = (
    "Give the name of a pydantic model, dataclass, TypedDict, Enum or JSON Schema dict, "
    f"or an inline spec such as --schema {INLINE_SYNTAX} "
    "(types: str, int, float, bool, date, list[...], a|b|c; ? = optional)."
)

Kind = Literal["str", "int", "float", "bool", "date", "choice", "list", "object"]

_DTYPES: dict[str, str] = {
    "str": "string",
    "int": "Int64",
    "float": "Float64",
    "bool": "boolean",
    "date": "datetime64[ns]",
    "choice": "category",
    "list": "object",
    "object": "object",
}

_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
}

_JSON_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_WRAPPED = "value"
_REPAIR_LIMIT = 6  # problems quoted in one error message


class SchemaValidationError(InvalidResponseError):
    """The reply is not JSON or breaks the schema; the message is fit to send back as a repair.

    ``raw_text`` keeps the reply as received; ``problems`` lists each violation.
    """

    def __init__(
        self,
        message: str,
        *,
        raw_text: str = "",
        problems: Sequence[str] = (),
        result: Any = None,
    ) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.problems = list(problems)
        self.result = result  # the ChatResult that failed, when a client made it


@dataclass(frozen=True)
class Field:
    """One answer field and its pandas column plan: ``dtype`` and, for a choice, its categories."""

    name: str
    kind: Kind
    optional: bool
    categories: tuple[Any, ...] = ()

    @property
    def dtype(self) -> str:
        """The pandas dtype of this field's column (``category`` for a choice)."""
        return _DTYPES[self.kind]


class Schema:
    """A typed answer: the JSON Schema to send, the parser of the reply, the frame of many.

    Build one with :meth:`from_spec`; the constructor is internal.
    """

    def __init__(
        self,
        name: str,
        json_schema: dict[str, Any],
        *,
        target: Any = None,
        target_kind: str = "json",
        wrapped: bool = False,
    ) -> None:
        self.name = name
        self.json_schema = json_schema
        self._target = target
        self._target_kind = target_kind  # json | inline | pydantic | dataclass | typeddict | enum
        self._wrapped = wrapped

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, fields={[f.name for f in self.fields()]})"

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: Any, namespace: Mapping[str, Any] | None = None) -> Schema:
        """A schema from ``--schema SPEC``: a name in ``namespace``, an inline spec, or the
        object itself (a pydantic model, dataclass, TypedDict, Enum or JSON Schema dict)."""
        if isinstance(spec, Schema):
            return spec
        if isinstance(spec, str):
            text = _unquote(spec.strip())
            if not text:
                raise SchemaError(f"--schema is empty. {_HOW}")
            if _DOTTED.fullmatch(text) and text not in _SCALARS:
                found, value = _lookup(text, namespace or {})
                if not found:
                    raise SchemaError(f"No {text!r} is defined in the notebook. {_HOW}")
                return cls._from_object(value, text.rpartition(".")[2])
            return _from_inline(text)
        return cls._from_object(spec, None)

    @classmethod
    def _from_object(cls, value: Any, given_name: str | None) -> Schema:
        label = given_name or getattr(value, "__name__", None) or type(value).__name__
        if isinstance(value, Mapping):
            return _from_json_schema(dict(value), given_name)
        if isinstance(value, type):
            if _is_pydantic_model(value):
                return _from_pydantic(value)
            if issubclass(value, enum.Enum):
                return _from_type(value, "enum")
            if dataclasses.is_dataclass(value):
                return _from_type(value, "dataclass")
            if _is_typeddict(value):
                return _from_type(value, "typeddict")
        what = "a class" if isinstance(value, type) else f"a value of type {type(value).__name__}"
        raise SchemaError(
            f"{label!r} is {what}, not a pydantic model, dataclass, TypedDict, Enum or "
            f"JSON Schema dict. {_HOW}"
        )

    # -- what is sent --------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """A stable digest of the name and the JSON Schema (for answer-store keys)."""
        canonical = json.dumps(
            {"name": self.name, "schema": self.json_schema},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` of a chat request (OpenAI's and DeepInfra's json_schema)."""
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.name,
                "schema": copy.deepcopy(self.json_schema),
                "strict": True,
            },
        }

    def fallback_response_format(self) -> dict[str, Any]:
        """The ``response_format`` to send where ``json_schema`` is refused: JSON mode.

        It carries the schema as ``schema``, which llama-cpp-python's server turns into a
        grammar (so even a random-weight model answers schema-valid JSON); DeepInfra's
        ``JsonObjectResponseFormat`` (S7) has only ``type`` and ignores it. Send it with
        :meth:`fallback_system_message`, which states the schema to the model itself."""
        return {"type": "json_object", "schema": copy.deepcopy(self.json_schema)}

    def fallback_system_message(self) -> str:
        """The system-message text that states the schema when only JSON mode is available."""
        schema = json.dumps(self.json_schema, separators=(",", ":"), ensure_ascii=False)
        return (
            "Answer with a single JSON object and nothing else (no prose, no code fence). "
            f"It must match this JSON Schema: {schema}"
        )

    def request_parts(
        self, messages: Sequence[Mapping[str, Any]], json_mode: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages and ``response_format`` to send: ``json_schema`` as given, or in
        JSON mode (``json_mode``) the fallback format with the schema stated in the system
        message (added to the first one, or put first)."""
        sent = [dict(message) for message in messages]
        if not json_mode:
            return sent, self.response_format()
        stated = self.fallback_system_message()
        if sent and sent[0].get("role") == "system" and isinstance(sent[0].get("content"), str):
            sent[0]["content"] = f"{sent[0]['content']}\n\n{stated}"
        else:
            sent.insert(0, {"role": "system", "content": stated})
        return sent, self.fallback_response_format()

    def markdown_row(self, value: Any, cell: Callable[[Any], str] = str) -> str:
        """A parsed value as a one-row Markdown table, fields as columns; ``cell`` makes
        each cell safe (the display's escaping)."""
        row = self.row(value)
        names = [f.name for f in self.fields()] if not self._wrapped else [_WRAPPED]
        shown = [cell("" if row.get(name) is None else _cell_text(row.get(name))) for name in names]
        head = "| " + " | ".join(cell(name) for name in names) + " |"
        rule = "|" + "---|" * len(names)
        return "\n".join([head, rule, "| " + " | ".join(shown) + " |"])

    def repair_messages(self, raw_text: str, error: SchemaValidationError) -> list[dict[str, str]]:
        """The two messages to append for the one repair request: the reply, and what is wrong."""
        return [
            {"role": "assistant", "content": raw_text},
            {
                "role": "user",
                "content": (
                    f"{error.message} Reply again with only the corrected JSON object, "
                    "matching the schema exactly."
                ),
            },
        ]

    # -- what comes back -----------------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """The typed value of a reply, or SchemaValidationError saying what to fix.

        A pydantic instance, a dataclass instance, an Enum member, or a dict (TypedDict,
        JSON Schema and inline specs; inline ``date`` fields become ``datetime.date``).
        """
        body = _strip_fence(text.strip())
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise SchemaValidationError(
                f"The answer is not valid JSON ({exc}).", raw_text=text, problems=[str(exc)]
            ) from None
        problems = _validate(data, self.json_schema, self.json_schema, "$")
        if problems:
            shown = "; ".join(problems[:_REPAIR_LIMIT])
            more = len(problems) - _REPAIR_LIMIT
            if more > 0:
                shown += f"; and {more} more"
            raise SchemaValidationError(
                f"The answer does not match the schema: {shown}.", raw_text=text, problems=problems
            )
        data = _fill_missing(data, self.json_schema)
        if self._wrapped:
            data = data[_WRAPPED]
        return self._build(data, text)

    def _build(self, data: Any, text: str) -> Any:
        kind, target = self._target_kind, self._target
        if kind == "pydantic":
            # A null stands for "not given" only where the model has a default to use.
            fields = target.model_fields
            cleaned = {
                key: value
                for key, value in data.items()
                if value is not None or key not in fields or fields[key].is_required()
            }
            try:
                return target.model_validate(cleaned)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                problem = _one_line_pydantic(exc)
                raise SchemaValidationError(
                    f"The answer does not match the schema: {problem}.",
                    raw_text=text,
                    problems=[problem],
                ) from None
        if kind in ("enum", "dataclass", "typeddict"):
            return _convert(data, target)
        if kind == "inline":
            return {field.name: _typed(data[field.name], field.kind) for field in self.fields()}
        return data

    # -- many answers as a table ---------------------------------------------------------------

    def fields(self) -> list[Field]:
        """The answer's fields in order, each with its pandas dtype plan."""
        schema = self.json_schema
        required = set(schema.get("required", ()))
        return [
            _field(name, prop, schema, optional=name not in required)
            for name, prop in schema.get("properties", {}).items()
        ]

    def row(self, value: Any) -> dict[str, Any]:
        """A parsed value as ``{field: JSON-like value}`` (Enum members become their values)."""
        if value is None:
            return {}
        if self._wrapped:
            return {_WRAPPED: _plain(value)}
        plain = _plain(value)
        return plain if isinstance(plain, dict) else {_WRAPPED: plain}

    def column_names(self, prefix: str = "") -> list[str]:
        """Frame column names: ``prefix_field`` (``field`` with no prefix; ``prefix`` alone
        for a wrapped single-value answer such as an Enum)."""
        if self._wrapped:
            return [prefix or _WRAPPED]
        return [f"{prefix}_{f.name}" if prefix else f.name for f in self.fields()]

    def to_frame(
        self, values: Sequence[Any], index: Sequence[Any] | None = None, prefix: str = ""
    ) -> pd.DataFrame:
        """A DataFrame with one typed column per field; ``None`` (a failed row) and missing
        optional fields become <NA> (NaT in a date column)."""
        import pandas as pd

        rows = [self.row(value) for value in values]
        columns: dict[str, Any] = {}
        for column, field in zip(self.column_names(prefix), self.fields(), strict=True):
            cells = [row.get(field.name) for row in rows]
            columns[column] = _column(cells, field)
        frame = pd.DataFrame(columns, index=None if index is None else pd.Index(index))
        if not columns:
            frame.index = pd.RangeIndex(len(rows)) if index is None else pd.Index(index)
        return frame


def refuses_json_schema(status: int, body: Any) -> bool:
    """Whether an error answer means the server does not take ``json_schema`` (then fall
    back to :meth:`Schema.fallback_response_format`): a 400/422 whose body names
    ``response_format`` or ``json_schema``, or a 500 that names both (llama-cpp-python's
    server wraps its request validation error in a 500)."""
    if isinstance(body, bytes):
        text = body.decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, default=str)
    names_format, names_schema = "response_format" in text, "json_schema" in text
    if status in (400, 422):
        return names_format or names_schema
    return status == 500 and names_format and names_schema


# --------------------------------------------------------------------------------------------
# Specs → JSON Schema


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    return text


def _lookup(name: str, namespace: Mapping[str, Any]) -> tuple[bool, Any]:
    head, *rest = name.split(".")
    if head not in namespace:
        return False, None
    value = namespace[head]
    for attribute in rest:
        if not hasattr(value, attribute):
            return False, None
        value = getattr(value, attribute)
    return True, value


def _safe_name(name: str) -> str:
    """A ``json_schema.name`` OpenAI accepts: ``[A-Za-z0-9_-]{1,64}``."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64]
    return cleaned or "answer"


def _is_pydantic_model(value: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(value, pydantic.BaseModel)


def _is_typeddict(value: type) -> bool:
    return typing.is_typeddict(value) or (
        sys.modules.get("typing_extensions") is not None
        and sys.modules["typing_extensions"].is_typeddict(value)
    )


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _inline_type(text: str, item: str) -> dict[str, Any]:
    """The JSON Schema of one inline type: a scalar, ``list[...]`` or ``a|b|c``."""
    if text in _SCALARS:
        return dict(_SCALARS[text])
    if text.startswith("list[") and text.endswith("]"):
        return {"type": "array", "items": _inline_type(text[5:-1].strip(), item)}
    if "|" in text:
        choices = [choice.strip() for choice in text.split("|")]
        if all(choices) and not any(set(c) & set("[]:?") for c in choices):
            if len(set(choices)) == len(choices):
                return {"type": "string", "enum": choices}
            raise SchemaError(f"--schema: {item.strip()!r} repeats a choice. {_HOW}")
    raise SchemaError(f"--schema: unknown type {text!r} in {item.strip()!r}. {_HOW}")


def _from_inline(text: str) -> Schema:
    properties: dict[str, Any] = {}
    for item in _split_top(text):
        entry = item.strip()
        if not entry:
            raise SchemaError(f"--schema {text!r} has an empty field. {_HOW}")
        if ":" in entry:
            name, _, type_text = (part.strip() for part in entry.partition(":"))
        elif " " in entry:
            name, _, type_text = (part.strip() for part in entry.partition(" "))
        else:
            name, type_text = entry, "str"
        optional = name.endswith("?") or type_text.endswith("?")
        name, type_text = name.rstrip("?").strip(), type_text.rstrip("?").strip() or "str"
        if not _NAME.fullmatch(name):
            raise SchemaError(f"--schema: {name!r} is not a field name. {_HOW}")
        if name in properties:
            raise SchemaError(f"--schema names the field {name!r} twice. {_HOW}")
        prop = _inline_type(type_text, entry)
        properties[name] = _nullable(prop) if optional else prop
    schema = _object(properties)
    return Schema("answer", schema, target_kind="inline")


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` that also admits null, as ``anyOf`` with ``{"type": "null"}``.

    Not a type list such as ``["string", "null"]``: llama.cpp's schema-to-grammar converter
    turns a type list into bare types and drops the ``enum``, ``items`` and ``format``
    beside it, while ``anyOf`` keeps them (and OpenAI's strict mode takes both)."""
    if _admits_null(prop):
        return prop
    if "anyOf" in prop:
        return {**prop, "anyOf": [*prop["anyOf"], {"type": "null"}]}
    return {"anyOf": [prop, {"type": "null"}]}


def _admits_null(prop: Mapping[str, Any]) -> bool:
    kind = prop.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_admits_null(option) for option in prop.get("anyOf", ()))


def _strict(node: Any) -> Any:
    """A copy of a JSON Schema made strict-mode friendly: every object closed, every property
    required, the formerly optional ones nullable (OpenAI's structured-output rules)."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _strict(value) for key, value in node.items()}
    if "default" in result and result["default"] is None:
        del result["default"]
    properties = result.get("properties")
    if isinstance(properties, dict) and result.get("type", "object") == "object":
        required = set(node.get("required", ()))
        result["properties"] = {
            name: prop if name in required else _nullable(prop) for name, prop in properties.items()
        }
        result["required"] = list(properties)
        result["additionalProperties"] = False
    return result


def _root_object(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema with an object root (wrapping anything else as ``value``), and whether
    it was wrapped."""
    if schema.get("type") == "object" or "properties" in schema:
        return schema, False
    defs: dict[str, Any] = {
        key: schema.pop(key) for key in ("$defs", "definitions") if key in schema
    }
    wrapped = _object({_WRAPPED: schema})
    wrapped.update(defs)
    return wrapped, True


def _from_json_schema(schema: dict[str, Any], given_name: str | None) -> Schema:
    if not schema:
        raise SchemaError(f"--schema: the JSON Schema dict {given_name or ''} is empty. {_HOW}")
    name = _safe_name(given_name or str(schema.get("title") or "answer"))
    rooted, wrapped = _root_object(_strict(copy.deepcopy(schema)))
    return Schema(name, rooted, target_kind="json", wrapped=wrapped)


def _from_pydantic(model: type) -> Schema:
    generated: dict[str, Any] = model.model_json_schema()  # type: ignore[attr-defined]
    schema, wrapped = _root_object(_strict(generated))
    return Schema(_safe_name(model.__name__), schema, target=model, target_kind="pydantic",
                  wrapped=wrapped)  # fmt: skip


def _from_type(target: type, kind: str) -> Schema:
    defs: dict[str, Any] = {}
    if kind == "enum":
        schema, wrapped = _object({_WRAPPED: _type_schema(target, defs)}), True
    else:
        schema, wrapped = _class_schema(target, defs), False
    if defs:
        schema["$defs"] = defs
    return Schema(_safe_name(target.__name__), schema, target=target, target_kind=kind,
                  wrapped=wrapped)  # fmt: skip


def _class_fields(target: type) -> list[tuple[str, Any, bool]]:
    """(name, annotation, optional) of a dataclass's or TypedDict's fields, in order."""
    hints = typing.get_type_hints(target)
    if dataclasses.is_dataclass(target):
        result = []
        for item in dataclasses.fields(target):
            has_default = (
                item.default is not dataclasses.MISSING
                or item.default_factory is not dataclasses.MISSING
            )
            result.append((item.name, hints[item.name], has_default))
        return result
    optional_keys: frozenset[str] = getattr(target, "__optional_keys__", frozenset())
    return [(name, hint, name in optional_keys) for name, hint in hints.items()]


def _class_schema(target: type, defs: dict[str, Any]) -> dict[str, Any]:
    properties = {}
    for name, hint, has_default in _class_fields(target):
        prop = _type_schema(hint, defs)
        properties[name] = _nullable(prop) if has_default else prop
    schema = _object(properties)
    schema["title"] = target.__name__
    return schema


def _type_schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a Python annotation (the types the inline spec offers, plus
    Literal, Enum, Optional and nested dataclasses or TypedDicts)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (origin is types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        inner = (
            _type_schema(options[0], defs)
            if len(options) == 1
            else {"anyOf": [_type_schema(arg, defs) for arg in options]}
        )
        return _nullable(inner) if len(options) < len(args) else inner
    if origin is Literal:
        return {"type": _json_type(args[0]), "enum": list(args)}
    if origin in (list, Sequence, tuple) or hint in (list, tuple):
        item = args[0] if args else Any
        return {"type": "array", "items": _type_schema(item, defs)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [member.value for member in hint]
        return {"type": _json_type(values[0]), "enum": values, "title": hint.__name__}
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if hint is python_type:
            return dict(_SCALARS[name])
    if hint in (datetime.date,):
        return dict(_SCALARS["date"])
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or _is_typeddict(hint)):
        if hint.__name__ not in defs:
            defs[hint.__name__] = {}  # a placeholder stops recursion
            defs[hint.__name__] = _class_schema(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if hint is Any or hint is dict or origin is dict:
        raise SchemaError(
            f"--schema: the field type {hint!r} is too open for a typed answer. {_HOW}"
        )
    raise SchemaError(f"--schema: the field type {hint!r} is not supported. {_HOW}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


# --------------------------------------------------------------------------------------------
# The validator: the JSON Schema subset the specs produce


def _resolve(prop: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = prop.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return prop
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return _resolve(node, root) if isinstance(node, Mapping) else {}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        whole = isinstance(value, float) and value.is_integer()
        return whole or (isinstance(value, int) and not isinstance(value, bool))
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _describe(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:60]


def _validate(value: Any, prop: Mapping[str, Any], root: Mapping[str, Any], path: str) -> list[str]:
    """Every way ``value`` breaks ``prop``, as ``$.path: what is wrong`` lines."""
    prop = _resolve(prop, root)
    if "anyOf" in prop:
        options = prop["anyOf"]
        if any(not _validate(value, option, root, path) for option in options):
            return []
        non_null = [o for o in options if _resolve(o, root).get("type") != "null"]
        if value is not None and len(non_null) == 1:
            return _validate(value, non_null[0], root, path)
        return [f"{path}: {_describe(value)} matches none of the allowed forms"]
    kind = prop.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or ())
    if kinds and not any(_type_ok(value, each) for each in kinds):
        wanted = " or ".join(_JSON_TYPE_NAMES.get(each, each) for each in kinds)
        return [f"{path}: expected {wanted}, got {_describe(value)}"]
    if "const" in prop and value != prop["const"]:
        return [f"{path}: must be {_describe(prop['const'])}, got {_describe(value)}"]
    if "enum" in prop and value not in prop["enum"]:
        allowed = ", ".join(_describe(choice) for choice in prop["enum"] if choice is not None)
        return [f"{path}: {_describe(value)} is not one of {allowed}"]
    if isinstance(value, str) and prop.get("format") == "date" and not _is_iso_date(value):
        return [f"{path}: {_describe(value)} is not a date in YYYY-MM-DD form"]
    if isinstance(value, list) and isinstance(prop.get("items"), Mapping):
        problems = []
        for i, item in enumerate(value):
            problems += _validate(item, prop["items"], root, f"{path}[{i}]")
        return problems
    if isinstance(value, dict) and isinstance(prop.get("properties"), Mapping):
        return _validate_object(value, prop, root, path)
    return []


def _validate_object(
    value: dict[str, Any], prop: Mapping[str, Any], root: Mapping[str, Any], path: str
) -> list[str]:
    properties: Mapping[str, Any] = prop["properties"]
    problems = []
    for name in prop.get("required", ()):
        if name not in value and not _admits_null(_resolve(properties.get(name, {}), root)):
            problems.append(f"{path}.{name}: missing")
    if prop.get("additionalProperties") is False:
        problems += [
            f"{path}.{name}: not in the schema" for name in value if name not in properties
        ]
    for name, item in value.items():
        if name in properties:
            problems += _validate(item, properties[name], root, f"{path}.{name}")
    return problems


def _is_iso_date(text: str) -> bool:
    if not _ISO_DATE.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _fill_missing(data: Any, schema: Mapping[str, Any]) -> Any:
    """A valid top-level object with its missing (nullable) properties set to None, in
    schema order."""
    if not isinstance(data, dict):
        return data
    properties = schema.get("properties", {})
    ordered = {name: data.get(name) for name in properties}
    ordered.update({k: v for k, v in data.items() if k not in properties})
    return ordered


def _strip_fence(text: str) -> str:
    """The JSON inside a Markdown code fence, for models that wrap JSON-mode answers."""
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _one_line_pydantic(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"$.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in errors()
        )
    return str(exc)


# --------------------------------------------------------------------------------------------
# Typed values and columns


def _typed(value: Any, kind: str) -> Any:
    """An inline field's JSON value as its Python type (``date``, and ``float`` for 1)."""
    if kind == "date" and isinstance(value, str):
        return datetime.date.fromisoformat(value)
    if kind == "float" and isinstance(value, int):
        return float(value)
    if kind == "int" and isinstance(value, float):
        return int(value)
    return value


def _convert(value: Any, hint: Any) -> Any:
    """A validated JSON value turned into ``hint``: Enum members, dates, dataclasses."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        options = [arg for arg in args if arg is not type(None)]
        return _convert(value, options[0]) if len(options) == 1 else value
    if origin in (list, Sequence, tuple) and args:
        items = [_convert(item, args[0]) for item in value]
        return tuple(items) if origin is tuple else items
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return hint(value)
        if hint is datetime.date and isinstance(value, str):
            return datetime.date.fromisoformat(value)
        if hint is float and isinstance(value, int):
            return float(value)
        if hint is int and isinstance(value, float):
            return int(value)
        if dataclasses.is_dataclass(hint) or _is_typeddict(hint):
            converted = {
                name: _convert(value.get(name), field_hint)
                for name, field_hint, _ in _class_fields(hint)
                if name in value
            }
            return hint(**converted)
    return value


def _cell_text(value: Any) -> str:
    """A field value as table text: lists joined with commas, dates in ISO form."""
    if isinstance(value, list):
        return ", ".join(_cell_text(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, dict)):
        return value.isoformat() if isinstance(value, datetime.date) else json.dumps(value)
    return str(value)


def _plain(value: Any) -> Any:
    """A parsed value as JSON-like Python data (dates stay dates; Enum members → values)."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return _plain(dump(mode="python"))
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _field(name: str, prop: Mapping[str, Any], root: Mapping[str, Any], optional: bool) -> Field:
    """A property's Field: its kind (hence dtype), whether null is allowed, its categories."""
    prop = _resolve(prop, root)
    if "anyOf" in prop:
        options = [_resolve(o, root) for o in prop["anyOf"]]
        non_null = [o for o in options if o.get("type") != "null"]
        nullable = len(non_null) < len(options)
        if len(non_null) == 1:
            inner = _field(name, non_null[0], root, optional or nullable)
            return inner
        return Field(name, "object", optional or nullable)
    kind = prop.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or ())
    nullable = optional or "null" in kinds
    kinds = [each for each in kinds if each != "null"]
    if "enum" in prop:
        return Field(name, "choice", nullable, tuple(c for c in prop["enum"] if c is not None))
    single = kinds[0] if len(kinds) == 1 else None
    if single == "string":
        return Field(name, "date" if prop.get("format") == "date" else "str", nullable)
    by_json: dict[str | None, Kind] = {
        "integer": "int",
        "number": "float",
        "boolean": "bool",
        "array": "list",
    }
    return Field(name, by_json.get(single, "object"), nullable)


def _column(cells: list[Any], field: Field) -> Any:
    """One typed pandas column (an ExtensionArray or Categorical) from cell values."""
    import pandas as pd

    if field.kind == "choice":
        return pd.Categorical(cells, categories=list(field.categories), ordered=False)
    if field.kind == "date":
        stamps = [pd.NaT if cell is None else pd.Timestamp(cell) for cell in cells]
        return pd.array(stamps, dtype="datetime64[ns]")
    if field.kind in ("list", "object"):
        return pd.array([pd.NA if cell is None else cell for cell in cells], dtype=object)
    return pd.array([pd.NA if cell is None else cell for cell in cells], dtype=field.dtype)
