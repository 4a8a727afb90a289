"""Recordings of API exchanges, for keyless and offline replay (the storage, sans-I/O).

A recording is one readable JSON file: each exchange holds the request (method, path and
JSON body; never any header) and the answer (status, content type, and either the body or
the stream's chunks with the delay before each). One chunk per line keeps diffs small.
Images attached to chat messages (data URLs) are stored once, in ``images``, and the
requests name them by content hash (``sha256:...``).
Never in a file: the key (the transport passes it to :meth:`Recording.append`), nor any
scoped token or key value an answer or a path holds (a ``token`` field, a ``jwtoken=``
query, anything shaped like a JWT): each becomes a placeholder derived from its hash, the
same at every occurrence, so a replay still matches the requests that carry one.
Replay matches requests by content (model, messages, parameters, prompt, image hashes);
identical requests are answered in recorded order. When only the bytes of attached images
differ (a plot drawn by another matplotlib version), the request with the same images in
the same places answers. The transports in ``_http`` use this module.
"""

from __future__ import annotations

import base64
import codecs
import dataclasses
import difflib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ._config import (
    DEFAULT_REPLAY_SPEED,
    RECORD_ENV,
    REPLAY_ENV,
    Secret,
    env_text,
    resolve_replay_speed,
)
from ._pyodide import IN_BROWSER, SERVE_OVER_HTTPS
from ._text import shorten
from .errors import ConfigurationError, ReplayError

__all__ = [
    "ChunkText",
    "Exchange",
    "Record",
    "Recording",
    "RecordingMode",
    "Replay",
    "recording_from_env",
]

FORMAT_NAME = "deepinfra-magic-recording"
FORMAT_VERSION = 1


@dataclass
class Exchange:
    """One request and its recorded answer."""

    method: str
    path: str
    body: Any
    status: int
    content_type: str = "application/json"
    text: str | None = None  # a complete text body
    binary: bytes | None = None  # a complete binary body (hosted images)
    chunks: list[tuple[float, str]] | None = None  # a stream: (delay before, text)
    latency: float = 0.0  # seconds from request to the answer's first bytes
    source: str = ""  # the recording file it was read from (shown on replayed outputs)
    recorded_at: float | None = None  # when it was recorded (Unix time), if the file says

    @property
    def key(self) -> str:
        """What replay matches on: method, path and the canonical JSON body."""
        return canonical_request(self.method, self.path, self.body)

    def body_bytes(self) -> bytes:
        """The complete body (streams joined), as sent on the wire."""
        if self.binary is not None:
            return self.binary
        if self.chunks is not None:
            return "".join(text for _, text in self.chunks).encode()
        return (self.text or "").encode()

    def to_json(self) -> dict[str, Any]:
        """The stored form (see ``Recording.dumps`` for the layout)."""
        response: dict[str, Any] = {"status": self.status, "content_type": self.content_type}
        response["latency"] = round(self.latency, 4)
        if self.recorded_at is not None:
            response["recorded_at"] = _iso_time(self.recorded_at)
        if self.chunks is not None:
            response["chunks"] = [[round(delay, 4), text] for delay, text in self.chunks]
        elif self.binary is not None:
            response["base64"] = base64.b64encode(self.binary).decode("ascii")
        elif (parsed := _json_or_none(self.text, self.content_type)) is not None:
            response["json"] = parsed  # readable and diffable, not one escaped string
        else:
            response["text"] = self.text or ""
        request = {"method": self.method, "path": self.path, "json": self.body}
        return {"request": request, "response": response}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "") -> Exchange:
        """Read one stored exchange."""
        request, response = data["request"], data["response"]
        chunks = response.get("chunks")
        text = response.get("text")
        if "json" in response:
            text = json.dumps(response["json"], ensure_ascii=False)
        return cls(
            method=str(request["method"]),
            path=str(request["path"]),
            body=request.get("json"),
            status=int(response["status"]),
            content_type=str(response.get("content_type") or "application/json"),
            text=text,
            binary=base64.b64decode(response["base64"]) if "base64" in response else None,
            chunks=[(float(d), str(t)) for d, t in chunks] if chunks is not None else None,
            latency=float(response.get("latency") or 0.0),
            source=source,
            recorded_at=_unix_time(response.get("recorded_at")),
        )


def _iso_time(moment: float) -> str:
    """A readable UTC time for the file: ``2026-11-24T13:06:08Z``."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unix_time(text: Any) -> float | None:
    """The Unix time of an ISO 8601 time from the file; None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _json_or_none(text: str | None, content_type: str) -> Any:
    """The parsed body of a JSON answer, or None when it is not JSON."""
    if text is None or not content_type.startswith("application/json"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def canonical_request(method: str, path: str, body: Any) -> str:
    """Canonical text of a request, independent of key order, spacing and number spelling."""
    return f"{method.upper()} {path} {_canonical_json(body)}"


def _canonical_json(value: Any) -> str:
    """JSON with sorted keys and numbers by value (``0.0`` is ``0``): what a JS tool that
    re-saves the file (JupyterLite's contents do) keeps."""
    return json.dumps(
        _numbers_by_value(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


def _numbers_by_value(value: Any) -> Any:
    """``value`` with every integral float as an int, in nested lists and objects too."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _numbers_by_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_by_value(item) for item in value]
    return value


IMAGE_REF = "sha256:"


def pack_images(body: Any, images: dict[str, str] | None = None, ref: str | None = None) -> Any:
    """``body`` with each data-URL image of its chat messages replaced by ``sha256:<hex>``
    (or by ``ref``); the data URLs are put into ``images`` when it is given."""
    import hashlib  # here, not at the top: loading the extension stays light

    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return body
    messages = []
    for message in body["messages"]:
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            messages.append(message)
            continue
        parts = []
        for part in content:
            image = part.get("image_url") if isinstance(part, Mapping) else None
            url = image.get("url") if isinstance(image, Mapping) else None
            if (
                isinstance(image, Mapping)
                and isinstance(url, str)
                and url.startswith(("data:", IMAGE_REF))
            ):
                name = url
                if url.startswith("data:"):
                    name = IMAGE_REF + hashlib.sha256(url.encode()).hexdigest()
                    if images is not None:
                        images[name] = url
                part = {**part, "image_url": {**image, "url": ref or name}}
            parts.append(part)
        messages.append({**message, "content": parts})
    return {**body, "messages": messages}


class ChunkText:
    """Turns network chunks into text without breaking characters split across chunks."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, chunk: bytes, final: bool = False) -> str:
        return self._decoder.decode(chunk, final)


@dataclass(frozen=True)
class Replay:
    """Answer from recordings (several are searched together) at a pace: 1 as recorded,
    2 twice as fast, 0 at once. No key and no network are needed."""

    paths: tuple[Path, ...]
    speed: float = DEFAULT_REPLAY_SPEED

    @classmethod
    def of(cls, paths: str | os.PathLike[str], speed: float = DEFAULT_REPLAY_SPEED) -> Replay:
        """Replay one file, or several separated by ``os.pathsep`` (``a.json:b.json``)."""
        parts = os.fspath(paths).split(os.pathsep)
        return cls(tuple(Path(part).expanduser() for part in parts if part.strip()), speed)

    def describe(self) -> str:
        """For users: ``replaying quickstart.json + plot.json``."""
        return f"replaying {' + '.join(path.name for path in self.paths)}"


@dataclass(frozen=True)
class Record:
    """Send requests for real and write every exchange to ``path`` (never a key)."""

    path: Path

    @property
    def paths(self) -> tuple[Path, ...]:
        """The one file, as a tuple like :attr:`Replay.paths`."""
        return (self.path,)

    def describe(self) -> str:
        """For users: ``recording to session.json``."""
        return f"recording to {self.path.name}"


RecordingMode = Replay | Record


def recording_from_env(speed: float | None = None) -> RecordingMode | None:
    """A whole deployment (a Binder image, a workshop) can switch mode by environment."""
    speed = resolve_replay_speed(speed)  # checked even when unused: a typo shows at once
    replay = env_text(REPLAY_ENV)
    if replay:
        return Replay.of(replay, speed)
    record = env_text(RECORD_ENV)
    if record:
        return Record(Path(record).expanduser())
    return None


class Recording:
    """A recording file in memory: thread-safe lookup for replay, append-and-save for record."""

    def __init__(
        self,
        path: Path,
        exchanges: Iterable[Exchange] = (),
        note: str = "",
        images: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.note = note
        self.exchanges = list(exchanges)
        self.images = dict(images or {})  # sha256:<hex> -> data URL, each image once
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}
        self._by_key: dict[str, list[Exchange]] | None = None  # built on the first replay
        self._by_shape: dict[str, list[Exchange]] = {}  # the same, image bytes aside

    # --- files --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *more: str | os.PathLike[str]) -> Recording:
        """Read a recording (or several, searched together), with a one-line error naming
        the file when one is unusable."""
        recording = cls._load_one(path)
        for extra in more:
            other = cls._load_one(extra)
            recording.exchanges += other.exchanges
            recording.images.update(other.images)
        return recording

    @classmethod
    def _load_one(cls, path: str | os.PathLike[str]) -> Recording:
        file = Path(path).expanduser()
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"Recording {file} does not exist: check the path, or create it with "
                "%deepinfra_record."
            ) from None
        except (OSError, ValueError) as exc:
            # In a browser page an OSError ("[Errno 28]") means no service worker serves files.
            cause = SERVE_OVER_HTTPS if IN_BROWSER and isinstance(exc, OSError) else str(exc)
            raise ConfigurationError(
                f"Recording {file} cannot be read: {shorten(cause)}."
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ConfigurationError(f"{file} is not a deepinfra-magic recording.")
        try:
            exchanges = [Exchange.from_json(item, file.name) for item in data.get("exchanges", [])]
            images = {str(k): str(v) for k, v in dict(data.get("images") or {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"Recording {file} is damaged: {shorten(str(exc))}.") from None
        return cls(file, exchanges, note=str(data.get("note") or ""), images=images)

    @classmethod
    def open_for_recording(cls, path: str | os.PathLike[str]) -> Recording:
        """Start (or continue) a recording at ``path``; the file is written on each exchange."""
        file = Path(path).expanduser()
        if file.exists():
            recording = cls.load(file)
        else:
            recording = cls(file, note="Recorded with deepinfra-magic. Holds no key or header.")
        try:
            recording.save()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot write the recording {file} ({shorten(exc.strerror or str(exc), 80)}): "
                "choose another path."
            ) from None
        return recording

    def dumps(self) -> str:
        """The file text: one exchange header per line and one stream chunk per line."""
        lines = [
            "{",
            f' "format": {json.dumps(FORMAT_NAME)},',
            f' "version": {FORMAT_VERSION},',
            f' "note": {json.dumps(self.note, ensure_ascii=False)},',
        ]
        if self.images:
            rows = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in self.images.items()]
            lines += [' "images": {', ",\n".join(rows), " },"]
        lines.append(' "exchanges": [')
        for index, exchange in enumerate(self.exchanges):
            data = exchange.to_json()
            chunks = data["response"].pop("chunks", None)
            request = json.dumps(data["request"], ensure_ascii=False)
            response = json.dumps(data["response"], ensure_ascii=False)
            comma = "," if index < len(self.exchanges) - 1 else ""
            if chunks is None:
                lines.append(f'  {{"request": {request},\n   "response": {response}}}{comma}')
                continue
            lines.append(f'  {{"request": {request},')
            lines.append(f'   "response": {response[:-1]}, "chunks": [')
            rows = [f"    {json.dumps(chunk, ensure_ascii=False)}" for chunk in chunks]
            lines.append(",\n".join(rows))
            lines.append(f"   ]}}}}{comma}")
        lines += [" ]", "}", ""]
        return "\n".join(lines)

    def save(self) -> None:
        """Write atomically, so a kernel stopped mid-run leaves a valid file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".recording-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(self.dumps())
            os.chmod(temp, 0o666 & ~_umask())  # an ordinary file, not mkstemp's private one
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def append(self, exchange: Exchange, *secrets: str | Secret) -> None:
        """Record one exchange (scrubbing the given secret values) and save the file."""
        exchange = _scrubbed(exchange, secrets)
        with self._lock:
            exchange.body = pack_images(exchange.body, self.images)
            self.exchanges.append(exchange)
            self.save()

    # --- replay -------------------------------------------------------------------------

    def find(self, method: str, path: str, body: Any) -> Exchange:
        """The recorded answer for a request; identical requests are served in order."""
        body = pack_images(body)
        path = token_free_path(path)  # as it was recorded
        key = canonical_request(method, path, body)
        with self._lock:
            if self._by_key is None:  # a replayed recording does not change: index it once
                self._by_key = {}
                for exchange in self.exchanges:
                    self._by_key.setdefault(exchange.key, []).append(exchange)
                    shape = canonical_request(exchange.method, exchange.path, _shape(exchange.body))
                    self._by_shape.setdefault(shape, []).append(exchange)
            matches = self._by_key.get(key)
            if not matches and _shape(body) != body:
                key = canonical_request(method, path, _shape(body))
                matches = self._by_shape.get(key)
            if not matches:
                raise ReplayError(self._mismatch_message(method, path, body))
            served = self._served.get(key, 0)
            self._served[key] = served + 1
            return matches[min(served, len(matches) - 1)]

    def _mismatch_message(self, method: str, path: str, body: Any) -> str:
        """One line naming the request and the closest recorded one."""
        asked = _describe_request(path, body)
        where = f"in {self.path.name}"
        remedy = "Re-record with %deepinfra_record, or turn replay off to run live with a key."
        same_path = [e for e in self.exchanges if e.method == method.upper() and e.path == path]
        if not same_path:
            return f"No recorded answer for {method.upper()} {path} ({asked}) {where}. {remedy}"
        target = canonical_request(method, path, body)
        closest = max(
            same_path,
            key=lambda e: difflib.SequenceMatcher(None, e.key, target, autojunk=False).ratio(),
        )
        difference = _describe_difference(closest.body, body)
        return (
            f"No recorded answer for {method.upper()} {path} ({asked}) {where}; the closest "
            f"recorded request differs in {difference}. {remedy}"
        )


def _shape(body: Any) -> Any:
    """A chat body with every image reference alike: what matches when only bytes differ."""
    return pack_images(body, ref="image")


def _scrubbed(exchange: Exchange, wrapped: tuple[str | Secret, ...]) -> Exchange:
    """A copy with every occurrence of the secret values replaced, in request and answer.

    Only the exact values: replay matches requests by their body and must give back the
    very text that was recorded, so look-alikes (a prompt about ``token=...``, a reply
    showing ``sk-...``) are kept as they are.
    """
    secrets = [s.reveal() if isinstance(s, Secret) else s for s in wrapped]
    secrets = [s for s in secrets if s]
    body = _without_tokens(_without_secrets(exchange.body, secrets))
    chunks = (
        [(delay, _token_free(_without_secrets(text, secrets))) for delay, text in exchange.chunks]
        if exchange.chunks is not None
        else None
    )
    text = _without_secrets(exchange.text, secrets) if exchange.text is not None else None
    if text is not None:
        text = _token_free_body(text, exchange.content_type)
    path = token_free_path(_without_secrets(exchange.path, secrets))
    return dataclasses.replace(exchange, path=path, body=body, text=text, chunks=chunks)


# A scoped token (DeepInfra's ``jwt:`` + a JWT, or a bare JWT), a token in a query string,
# and the field that carries a minted token or a listed key's value (ScopedJWTOut, ApiToken).
_JWT = re.compile(r"(?:jwt:)?eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_TOKEN_QUERY = re.compile(r"([?&]jwtoken=)([^&]*)")
_TOKEN_FIELDS = ("token", "api_key")
_PLACEHOLDER = re.compile(r"(?:jwt:)?redacted-[0-9a-f]{16}")


def token_placeholder(value: str) -> str:
    """What a recording holds instead of a token: the same for the same token (so a
    replayed status request matches), distinct across tokens, and no secret. A placeholder
    stays itself (replay looks up requests that carry one)."""
    if _PLACEHOLDER.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return ("jwt:" if value.startswith("jwt:") else "") + f"redacted-{digest}"


def token_free_path(path: str) -> str:
    """A request path with the token of a ``jwtoken=`` query as its placeholder."""
    return _TOKEN_QUERY.sub(
        lambda m: m.group(1) + quote(token_placeholder(unquote(m.group(2))), safe=""), path
    )


def _token_free(text: str) -> str:
    return _JWT.sub(lambda match: token_placeholder(match.group(0)), text)


def _without_tokens(value: Any) -> Any:
    """A JSON value with every token field and JWT-shaped string replaced."""
    if isinstance(value, str):
        return _token_free(value)
    if isinstance(value, list):
        return [_without_tokens(item) for item in value]
    if isinstance(value, dict):
        return {
            key: token_placeholder(item)
            if key in _TOKEN_FIELDS and isinstance(item, str) and item
            else _without_tokens(item)
            for key, item in value.items()
        }
    return value


def _token_free_body(text: str, content_type: str) -> str:
    """A complete answer without tokens (a JSON body keeps its structure)."""
    parsed = _json_or_none(text, content_type)
    if parsed is None:
        return _token_free(text)
    scrubbed = _without_tokens(parsed)
    return text if scrubbed == parsed else json.dumps(scrubbed, ensure_ascii=False)


def _without_secrets(value: Any, secrets: list[str]) -> Any:
    """A JSON value with each secret replaced in its strings (the structure stays valid)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, list):
        return [_without_secrets(item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: _without_secrets(item, secrets) for key, item in value.items()}
    return value


def _last_user_message(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return None


def _content_text(content: Any) -> str:
    """A message's text; content parts as their text plus ``[+N images]``."""
    if not isinstance(content, list):
        return str(content)
    texts = [str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p]
    images = sum(1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url")
    return " ".join(texts) + (f" [+{images} image{'s' if images != 1 else ''}]" if images else "")


def _describe_request(path: str, body: Any) -> str:
    """Model plus prompt or last user message, shortened."""
    if not isinstance(body, Mapping):
        return "no body"
    parts = []
    if body.get("model"):
        parts.append(f"model {body['model']}")
    text = body.get("prompt") if "prompt" in body else _last_user_message(body)
    if text is not None:
        parts.append(
            f"{'prompt' if 'prompt' in body else 'last message'} {shorten(str(text), 50)!r}"
        )
    return ", ".join(parts) or shorten(json.dumps(body), 60)


def _describe_difference(recorded: Any, asked: Any) -> str:
    """Which fields differ between two request bodies, with both values."""
    if not isinstance(recorded, Mapping) or not isinstance(asked, Mapping):
        return "the request body"
    differences = []
    for name in sorted(set(recorded) | set(asked)):
        was, now = recorded.get(name), asked.get(name)
        if _canonical_json(was) == _canonical_json(now):
            continue
        if name == "messages" and isinstance(was, list) and isinstance(now, list):
            differences.append(_describe_messages(was, now))
        elif isinstance(was, str) and isinstance(now, str):
            differences.append(_compare(name, was, now, quote=True))
        else:
            differences.append(_compare(name, json.dumps(was), json.dumps(now), quote=False))
    if differences:
        return "; ".join(differences[:3])
    return _compare("the body", _canonical_json(recorded), _canonical_json(asked), quote=False)


def _describe_messages(was: list[Any], now: list[Any]) -> str:
    for index, (old, new) in enumerate(zip(was, now, strict=False)):
        if old != new:
            old_text = _content_text(old.get("content") if isinstance(old, Mapping) else old)
            new_text = _content_text(new.get("content") if isinstance(new, Mapping) else new)
            return _compare(f"messages[{index}]", old_text, new_text, quote=True)
    return f"the number of messages (recorded {len(was)}, now {len(now)})"


def _compare(name: str, old: str, new: str, *, quote: bool, width: int = 40) -> str:
    """``name (recorded …, now …)`` showing both texts where they first differ, so that
    long prompts that differ only near the end do not look the same."""
    shorter = min(len(old), len(new))
    at = next((i for i in range(shorter) if old[i] != new[i]), shorter)
    begin = max(0, min(at - 12, max(len(old), len(new)) - width)) if at > width - 12 else 0

    def window(text: str) -> str:
        piece = text[begin : begin + width]
        piece = ("…" if begin else "") + piece + ("…" if begin + width < len(text) else "")
        return repr(piece) if quote else piece

    where = f" from character {at + 1}" if begin else ""
    return f"{name}{where} (recorded {window(old)}, now {window(new)})"
