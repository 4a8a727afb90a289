"""The HTTP server itself: FakeDeepInfra and its request handler."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import fnmatch
import json
import math
import random
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, TypeVar, overload
from urllib.parse import unquote, urlsplit

from . import batches, scoped_jwt, structured
from .catalog import _ASPECT_RATIOS, ASPECT_RATIO_MODELS, COG_MODELS, image_pricing
from .faults import (
    _NO_FAULT,
    IMAGES_REFUSED,
    DisconnectRecord,
    FaultRule,
    RequestRecord,
    ScriptedReply,
    ServerConfig,
    _chat_body_problem,
    _ChatPlan,
    _coerce_config,
    _has_images,
    _image_cost,
    _image_part_problem,
    _plan_chat,
    _positive_int,
    _prompt_tokens,
)
from .images import _data_uri, big_png, make_png, render_image
from .replies import _last_user_text
from .wire import (
    _MIME_EXTENSIONS,
    CHAT_PATH,
    CONTROL_PREFIX,
    FEATURED_PATH,
    FILES_PREFIX,
    INFERENCE_PREFIX,
    MODELS_PATH,
    OPENAI_IMAGES_PATH,
    RATE_LIMIT_PATH,
    SMALL_IMAGE_MAX_SIDE,
    STREAM_ERROR_EVENT,
    TINY_JPEG,
    TINY_WEBP,
    BodyStyle,
    ImageSize,
    ImageStyle,
    cog_response,
    detail_error,
    dumps,
    error_body,
    finish_usage,
    image_response,
    model_list,
    model_unavailable,
    not_authenticated,
    openai_error,
    openai_images_response,
    sse_event,
    validation_error,
)

# --------------------------------------------------------------------------------------------
# The server


T = TypeVar("T")


class _ConfigField(Generic[T]):
    """A ServerConfig field as a server attribute, so that ``server.max_concurrent = 8`` works."""

    name: str

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, server: None, owner: type) -> _ConfigField[T]: ...

    @overload
    def __get__(self, server: FakeDeepInfra, owner: type) -> T: ...

    def __get__(self, server: FakeDeepInfra | None, owner: type) -> T | _ConfigField[T]:
        if server is None:
            return self
        value: T = getattr(server.config, self.name)
        return value

    def __set__(self, server: FakeDeepInfra, value: T) -> None:
        server.configure(**{self.name: value})


class FakeDeepInfra:
    """The fake server: state, controls and observations; ``_Handler`` does the HTTP.

    Binds a free port on 127.0.0.1 when created; ``start()`` (or ``with``) serves from a
    daemon thread, ``close()`` stops serving and closes every socket.
    """

    token_delay = _ConfigField[float]()
    first_byte_delay = _ConfigField[float]()
    reply_tokens = _ConfigField["int | None"]()
    image_style = _ConfigField[ImageStyle]()
    image_size = _ConfigField[ImageSize]()
    image_delay = _ConfigField[float]()
    image_delay_by_seed = _ConfigField["dict[int, float]"]()
    max_concurrent = _ConfigField["int | None"]()
    valid_keys = _ConfigField["set[str]"]()
    seed_as_string = _ConfigField[bool]()
    nsfw_seeds = _ConfigField["set[int]"]()
    extra_models = _ConfigField["set[str]"]()
    catalog = _ConfigField["tuple[CatalogModel, ...]"]()
    models_need_key = _ConfigField[bool]()
    scoped_refusal = _ConfigField[str]()
    key_names = _ConfigField["dict[str, str]"]()
    clock_offset = _ConfigField[float]()
    cors = _ConfigField[bool]()

    def __init__(self, port: int = 0, **config: Any) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # disconnects, open responses, sockets
        self._base_config = ServerConfig(**_coerce_config(config))
        self.config = copy.deepcopy(self._base_config)
        self._faults: list[FaultRule] = []
        self._scripts: list[ScriptedReply] = []
        self._requests: list[RequestRecord] = []
        self._disconnects: list[DisconnectRecord] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self.batch_state = batches.BatchState()  # the Files and Batch API (batches.py)
        self.scoped_state = scoped_jwt.ScopedState()  # scoped JWTs (scoped_jwt.py)
        self._in_flight = 0
        self._peak = 0
        self._open = 0
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer(self, port)
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = False
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        # The base URL a user gives for DeepInfra's OpenAI-compatible API (DeepInfra's docs:
        # https://api.deepinfra.com/v1/openai); the path is what marks a host as DeepInfra.
        self.api_url = self.url + "/v1/openai"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeDeepInfra:
        """Serve from a daemon thread."""
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-deepinfra", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until an exception (such as KeyboardInterrupt)."""
        self._serving = True
        self._httpd.serve_forever(poll_interval=0.05)

    def close(self) -> None:
        """Stop serving, close the listening socket and hang up on every open connection."""
        if self._closed:
            return
        self._closed = True
        if self._serving:
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._httpd.server_close()
        with self._changed:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with self._changed:
            self._changed.wait_for(lambda: not self._connections, timeout=10)

    def __enter__(self) -> FakeDeepInfra:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- controls (also reachable over HTTP, see ``control``) ------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change config fields (see ServerConfig); JSON forms such as lists are accepted."""
        coerced = _coerce_config(changes)
        with self._lock:
            self.config = dataclasses.replace(self.config, **coerced)

    def reset(self) -> None:
        """Forget faults, scripts, files and logs, and return to the config given at creation."""
        with self._lock:
            self.config = copy.deepcopy(self._base_config)
            self._faults.clear()
            self._scripts.clear()
            self._requests.clear()
            self._disconnects.clear()
            self._files.clear()
            self.batch_state = batches.BatchState()
            self.scoped_state = scoped_jwt.ScopedState()
            self._peak = 0

    def add_fault(self, path: str = CHAT_PATH, times: int | None = 1, **action: Any) -> FaultRule:
        """Queue a fault for the next ``times`` requests matching ``path``; see FaultRule.

        A request takes the first queued rule that matches it, so rules for the same path
        apply one after another.
        """
        rule = FaultRule(path=path, times=times, **action)
        with self._lock:
            self._faults.append(rule)
        return rule

    def script_reply(
        self, text: str, match: str | None = None, reasoning: str | None = None
    ) -> None:
        """Queue a canned reply for the next chat request whose last user message contains
        ``match`` (any request when None); scripts are used once, in the order given."""
        with self._lock:
            self._scripts.append(ScriptedReply(text, match, reasoning))

    def control(self, method: str, path: str, body: Any) -> dict[str, Any] | None:
        """Carry out an HTTP control request under ``/_fake/``; None for an unknown one.

        ``POST /_fake/reset``, ``/_fake/config``, ``/_fake/fault``, ``/_fake/script``,
        ``/_fake/wait_for_disconnect`` and ``/_fake/wait_streams_closed`` take the keyword
        arguments of the method of the same name as a JSON object; ``GET /_fake/log`` returns
        ``log()``.
        """
        kwargs = body if isinstance(body, dict) else {}
        match method, path.removeprefix(CONTROL_PREFIX):
            case "GET", "log":
                return self.log()
            case "POST", "reset":
                self.reset()
            case "POST", "config":
                self.configure(**kwargs)
            case "POST", "fault":
                self.add_fault(**kwargs)
            case "POST", "script":
                self.script_reply(**kwargs)
            case "POST", "wait_for_disconnect":
                return {"ok": self.wait_for_disconnect(**kwargs)}
            case "POST", "wait_streams_closed":
                return {"ok": self.wait_streams_closed(**kwargs)}
            case _:
                return None
        return {"ok": True}

    # -- observations ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the API requests received since the last reset."""
        with self._lock:
            return list(self._requests)

    def count(self, path_glob: str, method: str | None = None) -> int:
        """How many logged requests match the path glob (and method, if given)."""
        return sum(
            1
            for record in self.requests
            if fnmatch.fnmatchcase(record.path, path_glob)
            and (method is None or record.method == method.upper())
        )

    @property
    def disconnects(self) -> int:
        """How many clients left before their response was completely written."""
        with self._lock:
            return len(self._disconnects)

    @property
    def disconnect_log(self) -> list[DisconnectRecord]:
        """A snapshot of the recorded disconnects."""
        with self._lock:
            return list(self._disconnects)

    @property
    def peak_concurrency(self) -> int:
        """The most API requests admitted at once since the last reset."""
        with self._lock:
            return self._peak

    @property
    def streams_open(self) -> int:
        """Responses being prepared or written right now."""
        with self._lock:
            return self._open

    def wait_for_disconnect(self, timeout: float, count: int = 1) -> bool:
        """Block until at least ``count`` disconnects are recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._disconnects) >= count, timeout)

    def wait_streams_closed(self, timeout: float) -> bool:
        """Block until no response is being written; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)

    def log(self) -> dict[str, Any]:
        """Everything observed, as JSON-ready data (the body of ``GET /_fake/log``)."""
        with self._lock:
            return {
                "requests": [dataclasses.asdict(record) for record in self._requests],
                "disconnects": [dataclasses.asdict(record) for record in self._disconnects],
                "peak_concurrency": self._peak,
                "streams_open": self._open,
            }

    # -- used by the request handler ------------------------------------------------------------

    def _log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _take_fault(self, path: str, prompt: str) -> FaultRule:
        """Use up one application of the first rule matching ``path`` (and ``prompt``, the
        request's last user message, for a rule with a ``match``)."""
        with self._lock:
            for rule in self._faults:
                if fnmatch.fnmatchcase(path, rule.path) and (
                    rule.match is None or rule.match in prompt
                ):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._faults.remove(rule)
                    return rule
        return _NO_FAULT

    def _take_script(self, prompt: str) -> ScriptedReply | None:
        """Use up the first script whose ``match`` is None or occurs in ``prompt``."""
        with self._lock:
            for script in self._scripts:
                if script.match is None or script.match in prompt:
                    self._scripts.remove(script)
                    return script
        return None

    def _store_file(self, data: bytes, mime: str) -> str:
        """Keep an image to serve under ``/files/``; returns its URL."""
        file_id = uuid.uuid4().hex
        with self._lock:
            self._files[file_id] = (data, mime)
        return f"{self.url}{FILES_PREFIX}{file_id}.{_MIME_EXTENSIONS.get(mime, 'bin')}"

    def _file(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._files.get(name.partition(".")[0])

    @contextlib.contextmanager
    def _admission(self, limited: bool) -> Iterator[bool]:
        """Count a request as in flight for ``max_concurrent``; yields False if over the limit."""
        if not limited:
            yield True
            return
        with self._lock:
            cap = self.config.max_concurrent
            admitted = cap is None or self._in_flight < cap
            if admitted:
                self._in_flight += 1
                self._peak = max(self._peak, self._in_flight)
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._in_flight -= 1

    @contextlib.contextmanager
    def _response_open(self) -> Iterator[None]:
        """Count a response in ``streams_open`` while it is prepared and written."""
        with self._changed:
            self._open += 1
        try:
            yield
        finally:
            with self._changed:
                self._open -= 1
                self._changed.notify_all()

    def _record_disconnect(self, path: str, events_sent: int) -> None:
        with self._changed:
            self._disconnects.append(DisconnectRecord(path, events_sent, time.time()))
            self._changed.notify_all()

    def _track_connection(self, connection: socket.socket, open_: bool) -> None:
        with self._changed:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
                self._changed.notify_all()


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server bound to 127.0.0.1 that knows its FakeDeepInfra."""

    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent connects must not wait for SYN retries

    def __init__(self, fake: FakeDeepInfra, port: int) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host name."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; report real bugs."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _ClientGone(ConnectionError):
    """The client closed its connection while the server was waiting to send."""


def _prompt(payload: Any) -> str:
    """The last user message of a chat request ('' for any other request)."""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        return ""
    return _last_user_text([message for message in messages if isinstance(message, dict)])


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection: routes requests, applies faults, writes (chunked) responses."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each event goes out as soon as it is written
    server: _HTTPServer
    events_sent: int  # SSE events written for the current request
    raw_body: bytes  # the current request's body, as received
    extra_headers: Mapping[str, str]  # a fault rule's headers for the current request
    cut_body: bool  # a fault rule's: hang up halfway through a whole (non-streamed) body

    def setup(self) -> None:
        super().setup()
        self.server.fake._track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track_connection(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read ``FakeDeepInfra.requests`` instead of stderr."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        """A web page's CORS preflight: allowed (headers added by ``end_headers``)."""
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def end_headers(self) -> None:
        """Allow any web page to call, as a CORS-enabled API does (the Fetch standard's
        CORS protocol); with ``cors`` off the browser blocks the page's requests."""
        if self.server.fake.config.cors and self.headers.get("Origin"):
            self.send_header("Access-Control-Allow-Origin", "*")
            if self.command == "OPTIONS":
                self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                asked = self.headers.get("Access-Control-Request-Headers", "")
                self.send_header("Access-Control-Allow-Headers", asked or "*")
        super().end_headers()

    # -- request flow ------------------------------------------------------------------------

    def _handle(self) -> None:
        fake = self.server.fake
        self.events_sent = 0
        self.extra_headers = {}
        self.cut_body = False
        path = unquote(urlsplit(self.path).path)
        if path.startswith(CONTROL_PREFIX):
            self._control(path, self._read_json())
            return
        # Counted from the request line on, so a test's wait_streams_closed() also covers
        # a request whose body is still being read and which has not been logged yet.
        with fake._response_open():
            payload = self._read_json()
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._log_request(RequestRecord(self.command, path, headers, payload, time.time()))
            try:
                self._serve(path, payload)
            except OSError:  # BrokenPipe, ConnectionReset, _ClientGone: the client left
                self.close_connection = True
                fake._record_disconnect(path, self.events_sent)

    def _read_json(self) -> Any:
        """The request body as JSON (None when empty or not JSON); the bytes stay in
        ``raw_body`` (file uploads are multipart)."""
        body = self.raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(body) if body else None
        except ValueError:
            return None

    def _control(self, path: str, payload: Any) -> None:
        try:
            result = self.server.fake.control(self.command, path, payload)
        except (TypeError, ValueError, KeyError) as exc:
            self._send_json(400, detail_error(str(exc)))
            return
        if result is None:
            self._send_json(404, detail_error("Not Found"))
        else:
            self._send_json(200, result)

    def _serve(self, path: str, payload: Any) -> None:
        fake = self.server.fake
        with fake._admission(limited=not path.startswith(FILES_PREFIX)) as admitted:
            if not admitted:
                # S15's body; S6 mentions no Retry-After, so none is sent.
                self._send_error(429, "error_obj", "Model busy, retry later")
                return
            rule = fake._take_fault(path, _prompt(payload))
            if rule.hang_up:  # no DeepInfra shape: any server that dies mid-request
                self._drop()
                return
            self.extra_headers = rule.headers
            self.cut_body = rule.cut_body
            self.pause(rule.first_byte_delay or 0.0)
            if rule.status is not None:
                self._send_error(rule.status, rule.body_style, rule.message)
                return
            self._route(path, payload, rule, fake.config)

    def _route(self, path: str, payload: Any, rule: FaultRule, config: ServerConfig) -> None:
        get, post = self.command == "GET", self.command == "POST"
        if get and path == FEATURED_PATH:
            self._send_json(200, [entry.to_json() for entry in config.catalog])
        elif get and path == MODELS_PATH:
            # Marked HTTPBearer in S7, yet reported to answer without checking the key (row 30
            # of the reference: an integration doc, and g4f's "backup URL that works without
            # a key"): the fake takes the risky reading, so a key check must not rely on it.
            # Other servers started with a key check it here too (``models_need_key``).
            if config.models_need_key and not self._authorized(config):
                return
            names = [entry.name for entry in config.catalog if entry.is_text]
            self._send_json(200, model_list(names + sorted(config.extra_models)))
        elif get and path == RATE_LIMIT_PATH:
            if self._authorized(config):  # S7: HTTPBearer; RateLimitOut
                self._send_json(200, {"rate_limit": 200, "tpm_rate_limit": 1_000_000})
        elif post and path == CHAT_PATH:
            self._chat(payload, rule, config)
        elif post and path == OPENAI_IMAGES_PATH:
            self._openai_images(payload, config)
        elif post and path.startswith(INFERENCE_PREFIX):
            self._inference(path.removeprefix(INFERENCE_PREFIX), payload, rule, config)
        elif get and path.startswith(FILES_PREFIX):
            self._serve_file(path.removeprefix(FILES_PREFIX))
        elif path.startswith(batches.PREFIXES):
            batches.handle(self, path, payload, config)
        elif path.startswith(scoped_jwt.PREFIXES):
            scoped_jwt.handle(self, path, payload, config)
        else:
            self._send_json(404, detail_error("Not Found"))

    def _authorized(self, config: ServerConfig) -> bool:
        """Check ``Authorization: Bearer <key>``; answers the failure itself.

        No key: 403 ``{"detail":{"error":"Not authenticated"}}`` (S13). A key it does not
        know: 401 in the OpenAI form (S14).
        """
        scheme, _, key = self.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            self._send_json(403, not_authenticated())
            return False
        if config.valid_keys and key not in config.valid_keys:
            if scoped_jwt.known_token(self, key):  # its limits: scoped_jwt.admit
                return True
            self._send_json(401, openai_error("Not authenticated", 401))
            return False
        return True

    # -- chat --------------------------------------------------------------------------------

    def _chat(self, payload: Any, rule: FaultRule, config: ServerConfig) -> None:
        if not self._authorized(config):
            return
        problem = _chat_body_problem(payload)
        if problem is not None:
            self._send_json(422, validation_error(problem))
            return
        image_problem = _image_part_problem(payload["messages"])
        if image_problem is not None:
            self._send_json(422, validation_error(*image_problem))
            return
        refusal = structured.refusal(payload)  # response_format (structured.py)
        if refusal is not None:
            self._send_json(*refusal)
            return
        entry = config.model(payload["model"])
        if (
            not (entry is not None and entry.is_text)
            and payload["model"] not in config.extra_models | structured.MODELS
        ):
            self._send_json(404, model_unavailable())
            return
        if not scoped_jwt.admit(self, payload["model"], config):
            return
        if _has_images(payload["messages"]) and not (entry is not None and entry.is_vision):
            # A model that cannot see, as llama.cpp's llama-server answers for one
            # (ggml-org/llama.cpp#15377: 500, "image input is not supported - hint: …").
            self._send_json(500, openai_error(IMAGES_REFUSED, 500))
            return
        prompt_tokens = _prompt_tokens(payload["messages"])
        if entry is not None and entry.max_tokens is not None and prompt_tokens > entry.max_tokens:
            # S16: a deterministic 500 that names its cause.
            message = (
                f"Requested input length {prompt_tokens} exceeds maximum input length "
                f"{entry.max_tokens}"
            )
            self._send_json(500, openai_error(message, 500))
            return
        script = None
        if rule.text is None:
            script = self.server.fake._take_script(_last_user_text(payload["messages"]))
            script = script or structured.scripted(payload)
        plan = _plan_chat(payload, entry, rule, script, config)
        scoped_jwt.charge(self, float(plan.usage.get("estimated_cost") or 0.0))
        if rule.first_byte_delay is None:
            self.pause(config.first_byte_delay)
        if payload.get("stream"):
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            delay = rule.token_delay if rule.token_delay is not None else config.token_delay
            self._stream_chat(plan, rule, delay, include_usage)
        else:
            self._send_json(200, plan.completion())

    def _stream_chat(
        self, plan: _ChatPlan, rule: FaultRule, delay: float, include_usage: bool
    ) -> None:
        self._start_chunked("text/event-stream")
        events = _EventWriter(self, rule, delay)
        events.send(plan.chunk({"role": "assistant", "content": ""}))
        for piece in plan.reasoning:
            events.send(plan.chunk({"reasoning_content": piece}))
        for index in range(len(plan.content) + 1):
            if rule.disconnect_after == index:
                events.flush()
                self._drop()
                return
            if rule.malformed_after == index:
                events.send("{not json")
            if rule.error_event_after == index:
                events.send(dumps(STREAM_ERROR_EVENT))
                events.flush()
                self._end_chunked()
                return
            if index < len(plan.content):
                content = plan.chunk({"content": plan.content[index]})
                events.send(content, split_json=rule.multi_data and index == 0)
        # S1: usage rides on the finish chunk; S19: OpenAI's include_usage adds its own chunk.
        finish = plan.chunk({}, plan.finish_reason, finish_usage(plan.usage))
        events.send(finish, last=not include_usage)
        if include_usage:
            events.send(plan.usage_chunk(), last=True)
        if not rule.no_done:
            events.send("[DONE]")
        events.flush()
        self._end_chunked()

    # -- images ------------------------------------------------------------------------------

    def _inference(self, model: str, payload: Any, rule: FaultRule, config: ServerConfig) -> None:
        if not self._authorized(config):
            return
        entry = config.model(model)
        if entry is None and model not in config.extra_models:
            self._send_json(404, model_unavailable())  # S7: 404 DeepError
            return
        if entry is not None and not entry.is_image:
            self._send_json(422, detail_error(f"Model {model} is not a text-to-image model"))
            return
        if not scoped_jwt.admit(self, model, config):
            return
        cog = model in COG_MODELS
        if cog:  # S9: a Cog model reads its fields from "input"
            fields = payload.get("input") if isinstance(payload, dict) else None
            if not isinstance(fields, dict):
                self._send_json(422, validation_error("input", given=payload))
                return
            payload = fields
        if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str):
            self._send_json(422, validation_error("prompt", given=payload))
            return
        started = time.monotonic()
        pricing = (entry.pricing if entry is not None else None) or image_pricing(0.0)
        width, height = self._image_size(model, payload, pricing)
        seed = payload.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            seed = random.randrange(2**32)
        count = _positive_int(payload.get("num_images"), 1)
        self.pause(config.image_delay_by_seed.get(seed, config.image_delay) * count)
        cost = _image_cost(pricing, payload, width, height) * count
        scoped_jwt.charge(self, cost)

        if config.image_size == "small":
            scale = min(1.0, SMALL_IMAGE_MAX_SIDE / max(width, height))
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        seeds = [seed + index for index in range(0 if rule.image_fault == "zero_images" else count)]
        nsfw = [each in config.nsfw_seeds for each in seeds]
        refs = [
            self._image_ref(payload["prompt"], each, width, height, rule, config, flagged)
            for each, flagged in zip(seeds, nsfw, strict=True)
        ]
        runtime_ms = int((time.monotonic() - started) * 1000)
        if cog:
            self._send_json(200, cog_response(refs, runtime_ms, cost))
            return
        style: ImageStyle = "images" if rule.image_fault == "zero_images" else config.image_style
        sent_seed: int | str = str(seed) if config.seed_as_string else seed  # S8: seed: str
        self._send_json(200, image_response(style, refs, sent_seed, runtime_ms, cost, nsfw or None))

    @staticmethod
    def _image_size(
        model: str, payload: dict[str, Any], pricing: dict[str, Any]
    ) -> tuple[int, int]:
        """Width and height: from ``aspect_ratio`` for the models that take it (S4), else
        from ``width``/``height`` with the catalog's defaults."""
        default_w, default_h = pricing["default_width"], pricing["default_height"]
        if model in ASPECT_RATIO_MODELS:
            across, down = _ASPECT_RATIOS.get(str(payload.get("aspect_ratio", "1:1")), (1, 1))
            side = math.sqrt(default_w * default_h / (across * down))
            return round(across * side), round(down * side)
        return (
            _positive_int(payload.get("width"), default_w),
            _positive_int(payload.get("height"), default_h),
        )

    def _openai_images(self, payload: Any, config: ServerConfig) -> None:
        """``POST /v1/openai/images/generations`` (S3, S7): JPEG bytes in ``b64_json`` (S3's
        example starts ``/9j/``, a JPEG)."""
        if not self._authorized(config):
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), str):
            self._send_json(422, validation_error("prompt", given=payload))
            return
        model = payload.get("model")
        entry = config.model(model) if isinstance(model, str) else None
        if entry is None or not entry.is_image:
            self._send_json(404, model_unavailable())
            return
        if not scoped_jwt.admit(self, entry.name, config):
            return
        count = _positive_int(payload.get("n"), 1)
        self._send_json(200, openai_images_response([TINY_JPEG] * count, payload["prompt"]))

    def _image_ref(
        self,
        prompt: str,
        seed: int,
        width: int,
        height: int,
        rule: FaultRule,
        config: ServerConfig,
        flagged: bool = False,
    ) -> str:
        """One image of a response as a data URI or a URL, with any image fault applied."""
        fake = self.server.fake
        if flagged:  # a flagged image comes back blacked out
            data, mime = make_png(width, height, (0, 0, 0)), "image/png"
        elif rule.image_fault == "big":
            data, mime = big_png(), "image/png"
        elif config.image_style == "jpeg":
            data, mime = TINY_JPEG, "image/jpeg"
        elif config.image_style == "webp":
            data, mime = TINY_WEBP, "image/webp"
        else:
            data, mime = render_image(prompt, seed, width, height), "image/png"
        if rule.image_fault == "url_404":
            return f"{fake.url}{FILES_PREFIX}{uuid.uuid4().hex}.png"
        if rule.image_fault == "invalid_base64":
            return "data:image/png;base64,@@ this is not base64 @@"
        if rule.image_fault == "unknown_mime":
            mime = "image/x-unknown"
        if config.image_style == "url":
            return fake._store_file(data, mime)
        return _data_uri(data, mime)

    def _serve_file(self, name: str) -> None:
        found = self.server.fake._file(name)
        if found is None:
            self._send_json(404, detail_error("Not Found"))
        else:
            data, mime = found
            self._send_bytes(200, data, mime)

    # -- writing -----------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, raising _ClientGone at once if the client hangs up meanwhile."""
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        try:
            self.connection.settimeout(seconds)
            peeked = self.connection.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return
        except OSError as exc:
            raise _ClientGone from exc
        finally:
            self.connection.settimeout(None)
        if not peeked:
            raise _ClientGone
        # The client pipelined its next request, so EOF cannot be watched for: just wait.
        time.sleep(max(0.0, deadline - time.monotonic()))

    def _send_headers(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, **self.extra_headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        fields = {"Content-Type": content_type} if content_type else {}
        self._send_headers(status, {**fields, "Content-Length": str(len(body)), **(headers or {})})
        if self.cut_body:  # no DeepInfra shape: a connection lost mid-answer
            self.wfile.write(body[: len(body) // 2])
            self._drop()
            return
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send_bytes(status, dumps(obj).encode(), "application/json")

    def _send_error(
        self,
        status: int,
        style: BodyStyle,
        message: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body, content_type = error_body(style, status, message)
        self._send_bytes(status, body, content_type, headers)

    def _start_chunked(self, content_type: str) -> None:
        self._send_headers(
            200,
            {
                "Content-Type": content_type,
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
            },
        )

    def write_chunk(self, data: bytes) -> None:
        """Send ``data`` as one HTTP chunk (wfile is unbuffered: it goes out immediately)."""
        if data:  # an empty chunk would end the body
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Hang up mid-body: the client sees the connection close before the last chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


_UTF8_LEAD_BYTE = re.compile(rb"[\xc0-\xff]")


class _EventWriter:
    """Writes SSE events as HTTP chunks, shaped by a fault rule's stream fields."""

    def __init__(self, handler: _Handler, rule: FaultRule, delay: float) -> None:
        self.handler = handler
        self.rule = rule
        self.delay = delay
        self.eol = "\r\n" if rule.crlf else "\n"
        self.held = b""  # events kept for one write (``one_write``)

    def send(self, data: str, *, split_json: bool = False, last: bool = False) -> None:
        """Send one event; ``last`` marks the event that ``no_done`` leaves unterminated."""
        handler, rule = self.handler, self.rule
        if rule.one_write:
            self.held += sse_event(data, eol=self.eol, end=not (last and rule.no_done))
            handler.events_sent += 1
            return
        if handler.events_sent:
            handler.pause(self.delay)
        if rule.comments:
            handler.write_chunk(f": keep-alive{self.eol}{self.eol}".encode())
        frame = sse_event(
            data, eol=self.eol, split_json=split_json, end=not (last and rule.no_done)
        )
        if rule.split_utf8:
            lead = _UTF8_LEAD_BYTE.search(frame)
            cut = lead.end() if lead else len(frame) // 2
            handler.write_chunk(frame[:cut])
            handler.write_chunk(frame[cut:])
        else:
            handler.write_chunk(frame)
        handler.events_sent += 1

    def flush(self) -> None:
        """Write the events kept for ``one_write`` as one HTTP chunk."""
        self.handler.write_chunk(self.held)
        self.held = b""
