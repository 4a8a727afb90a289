"""DeepInfra clients: :class:`DeepInfraClient` (blocking) and :class:`AsyncDeepInfraClient`.

Rules it keeps: every decision lives in the shared base (``_ClientBase``) or below it —
requests, flows (``_flows``, ``maps.batch``), pricing (``usage.priced``), map and batch
rules (``maps/``) — so a sync/async method pair differs only where the bytes move:
``_drive`` against ``await self._drive``, ``with``/``for`` against their ``async`` forms,
threads against tasks (``_fanout``). What a client learns or counts stays on the client:
its ledger (``usage``) and the image models that want Cog-shaped input. They work
without IPython::

    client = DeepInfraClient()                      # key from DEEPINFRA_API_KEY
    with client.chat([{"role": "user", "content": "Hi"}]) as stream:
        for event in stream:
            if isinstance(event, ContentDelta):
                print(event.text, end="")
    print(stream.result.usage)
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar, overload

from ._config import (
    DEFAULT_BATCH_POLL_INTERVAL,
    DEFAULT_CATALOG_TTL,
    DEFAULT_IMAGE_MODEL,
    DEFAULT_MAP_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_REPLAY_SPEED,
    DEFAULT_TEMPERATURE,
    RetryPolicy,
    Secret,
    Timeouts,
    key_source,
    resolve_api_url,
    resolve_flavour,
    resolve_key,
    resolve_replay_speed,
)
from ._fanout import TaskFanOut, ThreadFanOut
from ._flows import (
    Flow,
    arun_flow,
    catalog_flow,
    completion_flow,
    completion_result,
    image_flow,
    key_check_flow,
    run_flow,
)
from ._http import AsyncTransport, SyncTransport
from ._protocol import (
    ApiRequest,
    ChatStreamDecoder,
    RawResponse,
    chat_request,
)
from ._routes import Routes, fit_max_tokens
from ._text import mask_credentials
from .catalog import CATALOG_CACHE, DiskCache, Fetched, ModelCatalog, key_fingerprint
from .errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    DeepInfraError,
    InvalidArgumentError,
    ModelNotFoundError,
)
from .images import ImageArrived, ImageResult, ImageWaiting
from .maps.batch import (
    BatchJob,
    BatchOutcome,
    batch_input,
    batch_metadata,
    collect_flow,
    list_flow,
    merge_batch,
    note_batch,
    results_flow,
    status_flow,
    submit_flow,
    wait_flow,
)
from .maps.drive import MapRun, ProgressCallback, run_async, run_sync
from .maps.rows import MapInterrupted, MapJob, MapResult, MapRow, plan_map, sum_usage
from .maps.scheduler import RowScheduler
from .maps.store import AnswerStore
from .recording import Record, RecordingMode, Replay, recording_from_env
from .schema import Schema, SchemaValidationError, refuses_json_schema
from .types import ChatEvent, ChatResult, ContentDelta, ReasoningDelta
from .usage import SESSION_USAGE, UsageLedger, priced

__all__ = ["AsyncChatStream", "AsyncDeepInfraClient", "ChatStream", "DeepInfraClient"]

ImageEvent = ImageArrived | ImageWaiting
T = TypeVar("T")
C = TypeVar("C", bound="_ClientBase")
ClientT = TypeVar("ClientT", "DeepInfraClient", "AsyncDeepInfraClient")


class _FromEnvironment:
    """Sentinel: take record/replay mode from DEEPINFRA_MAGIC_REPLAY / _RECORD."""

    def __repr__(self) -> str:
        return "FROM_ENVIRONMENT"


FROM_ENVIRONMENT = _FromEnvironment()
MAX_CONCURRENT_IMAGES = 8
_log = logging.getLogger("deepinfra_magic")


def _recording_mode(
    recording: RecordingMode | _FromEnvironment | None,
    replay: str | os.PathLike[str] | None,
    record: str | os.PathLike[str] | None,
    replay_speed: float | None,
) -> RecordingMode | None:
    if replay is not None and record is not None:
        raise ConfigurationError("Pass replay= or record=, not both.")
    if replay is not None:
        speed = DEFAULT_REPLAY_SPEED if replay_speed is None else replay_speed
        return Replay.of(replay, resolve_replay_speed(speed))
    if record is not None:
        return Record(Path(os.fspath(record)).expanduser())
    if isinstance(recording, _FromEnvironment):
        return recording_from_env(replay_speed)
    if isinstance(recording, Replay) and replay_speed is not None:
        return dataclasses.replace(recording, speed=resolve_replay_speed(replay_speed))
    return recording


def _image_requests(
    routes: Routes,
    prompt: str,
    model: str,
    n: int,
    extra: Mapping[str, Any],
    cog_models: set[str],
) -> list[ApiRequest]:
    """One request per image; a given seed becomes seed, seed+1, … so images differ."""
    if not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"n must be a whole number of images ≥ 1, not {n!r}.")
    seed = extra.get("seed")
    requests = []
    for index in range(n):
        body = dict(extra)
        if seed is not None and n > 1:
            body["seed"] = int(seed) + index
        requests.append(routes.image_request(prompt, model, body, cog=model in cog_models))
    return requests


class _TypedAsk(NamedTuple):
    """A chat that wants a typed answer: what to ask, and the schema the reply must fit."""

    messages: Sequence[Mapping[str, Any]]
    model: str
    temperature: float | None
    max_tokens: int | None
    params: Mapping[str, Any]
    schema: Schema


class _StreamStart(NamedTuple):
    """What a streamed chat call opens with: its request, and the schema ask if typed."""

    request: ApiRequest
    ask: _TypedAsk | None


def _catalog_for_default(got: ModelCatalog | DeepInfraError) -> ModelCatalog | None:
    """The catalog to pick another server's default model from: None if the server
    refused its list (the chat says why), its error if it was unreachable (the chat would
    fail the same way)."""
    if not isinstance(got, DeepInfraError):
        return got
    if got.status_code is None:
        raise got
    return None


def _with_close_matches(
    error: ModelNotFoundError, got: ModelCatalog | DeepInfraError
) -> ModelNotFoundError:
    """A 404 for a model with close matches from the catalog (as it is, with no catalog)."""
    if isinstance(got, DeepInfraError):
        return error
    return error.with_close_matches(got.close_matches(error.model or ""))


class _Progress:
    """The n image requests of one call, as they finish: progress events in request order.
    A failure is set aside (the other images still arrive); :meth:`raise_first` raises the
    first one at the end. The thread and the task fan-outs share all of this."""

    def __init__(self, futures: Sequence[Any], started: float) -> None:
        self.order = {future: index for index, future in enumerate(futures)}
        self.errors: list[BaseException] = []
        self.started = started
        self.n = len(futures)
        self.done = 0

    def events(self, finished: Iterable[Any]) -> list[ImageEvent]:
        """The events for the requests that just finished (none finished: still waiting)."""
        if not finished:
            return [ImageWaiting(time.perf_counter() - self.started, self.done, self.n)]
        events: list[ImageEvent] = []
        for future in sorted(finished, key=self.order.__getitem__):
            index = self.order.pop(future)
            error = future.exception()
            if error is not None:
                self.errors.append(error)
                continue
            result = dataclasses.replace(future.result(), request_index=index)
            self.done = self.n - len(self.order) - len(self.errors)
            events.append(ImageArrived(result, self.done, self.n))
        return events

    def raise_first(self) -> None:
        """Raise the first failure, once every image that could arrive has arrived."""
        if self.errors:
            raise self.errors[0]


def _as_secret(api_key: str | Secret | None) -> Secret | None:
    """Wrap a key given as an argument at once, so that no traceback local shows it."""
    if api_key is None or isinstance(api_key, Secret):
        return api_key
    return Secret(api_key.strip())


class _ClientBase:
    """What both clients share: configuration, the transport, and turning answers into
    results. The two differ only in their transport (sync or async) and in awaiting.

    **Parameters:**

    * ``api_key`` – else ``DEEPINFRA_API_KEY``, else ``DEEPINFRA_API_TOKEN``.
    * ``base_url`` – the API root; else ``DEEPINFRA_BASE_URL``, else DeepInfra's. Any
      OpenAI-compatible root works too, such as ``http://127.0.0.1:8000/v1``.
    * ``flavour`` – "deepinfra" or "generic" forces the routes; by default (else
      ``DEEPINFRA_FLAVOUR``) DeepInfra's host or a ``…/v1/openai`` path means DeepInfra.
    * ``timeout`` – read timeout in seconds (connect stays short), or a ``Timeouts``.
    * ``max_retries`` – retries for 429/5xx/connect failures before any body is read.
    * ``replay`` / ``record`` – a recording file to answer from (several: separated by
      ``os.pathsep``), or to write to; by default ``DEEPINFRA_MAGIC_REPLAY``/``_RECORD``.
    * ``replay_speed`` – 1 replays at the recorded pace, 2 twice as fast, 0 instantly.
    * ``catalog_ttl`` / ``catalog_disk_cache`` – how long the on-disk model list is fresh.
    * ``proxy`` – an HTTP(S) proxy URL; by default ``HTTPS_PROXY`` and friends apply.
    * ``on_notice`` – receives one-line progress notes (a model that is still loading);
      by default they are logged on the ``deepinfra_magic`` logger. It may run in a thread.
    * ``usage`` – the ledger each request's tokens and cost are added to (``client.usage``);
      by default the process's ``SESSION_USAGE``, which ``%deepinfra_usage`` shows.
    """

    _transport: SyncTransport | AsyncTransport
    _transport_type: ClassVar[type[SyncTransport] | type[AsyncTransport]]
    _answers: AnswerStore | None = None  # opened on the first map that resumes

    def __init__(
        self,
        api_key: str | Secret | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeouts | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        replay: str | os.PathLike[str] | None = None,
        record: str | os.PathLike[str] | None = None,
        replay_speed: float | None = None,
        recording: RecordingMode | _FromEnvironment | None = FROM_ENVIRONMENT,
        catalog_ttl: float = DEFAULT_CATALOG_TTL,
        catalog_disk_cache: bool = True,
        http_transport: Any = None,
        proxy: str | None = None,
        flavour: str | None = None,
        on_notice: Callable[[str], None] | None = None,
        usage: UsageLedger | None = None,
    ) -> None:
        api_key = _as_secret(api_key)  # first: no frame may hold the plain key as a local
        self.usage = SESSION_USAGE if usage is None else usage
        self._cog_models: set[str] = set()  # image models that want {"input": {...}}
        # (server, model) pairs that refused response_format json_schema: JSON mode instead
        self._json_mode_models: set[tuple[str, str]] = set()
        self._options: dict[str, Any] = {
            "base_url": base_url, "timeout": timeout, "max_retries": max_retries,
            "catalog_ttl": catalog_ttl, "catalog_disk_cache": catalog_disk_cache,
            "http_transport": http_transport, "proxy": proxy, "flavour": flavour,
            "on_notice": on_notice, "usage": self.usage,
        }  # fmt: skip
        self.routes = Routes.for_url(resolve_api_url(base_url), resolve_flavour(flavour))
        self.base_url = self.routes.root
        self.timeouts = Timeouts.from_value(timeout)
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, not {max_retries!r}.")
        self.retry = RetryPolicy(max_retries=max_retries)
        self.recording = _recording_mode(recording, replay, record, replay_speed)
        self._options["recording"] = self.recording  # as resolved: a copy reads no variable
        self.key_source = "argument" if api_key is not None else key_source()
        # Replay answers from its file; recording must fetch, so the file gets the list.
        # A local server's list changes as models are pulled, and it is quick to ask.
        use_disk = catalog_disk_cache and self.recording is None and not self.routes.generic
        self._disk = DiskCache(ttl=catalog_ttl) if use_disk else None
        self._transport = self._transport_type(
            self.base_url,
            resolve_key(api_key),
            timeouts=self.timeouts,
            retry=self.retry,
            recording=self.recording,
            http_transport=http_transport,
            proxy=proxy,
            server=self.routes.server,
        )
        self._transport.notice = on_notice or _log.warning

    @property
    def has_key(self) -> bool:
        """True when requests will carry a key."""
        return self._transport.has_key

    def with_options(self: C, **changes: Any) -> C:
        """A new client like this one, with the same key unless ``api_key`` is among the
        changes (this one stays open; close it if done). Any constructor keyword works."""
        options = {**self._options, **changes}
        if "replay" in changes or "record" in changes:
            options["recording"] = None  # the new file replaces the old mode
        api_key = options.pop("api_key", self._transport.key())
        clone = type(self)(api_key, **options)
        clone._cog_models |= self._cog_models  # what was learnt holds for the same server
        clone._json_mode_models |= self._json_mode_models  # keyed by server: safe to share
        return clone

    def sends_key(self, key: Secret | None) -> bool:
        """True when this client sends exactly ``key`` (compared in constant time)."""
        sent = self._transport.key()
        if sent is None or key is None:
            return sent is None and key is None
        return hmac.compare_digest(sent.reveal().encode(), key.reveal().encode())

    def _sends_scoped_token(self) -> bool:
        """True when the key this client sends is a scoped token (a classroom seat)."""
        from .classroom import looks_like_scoped_token

        sent = self._transport.key()
        return sent is not None and looks_like_scoped_token(sent.reveal())

    def is_own_key(self, value: str) -> bool:
        """True when ``value`` is the key this client sends (constant time): how an
        account's key list marks the key in use without keeping any value."""
        sent = self._transport.key()
        return sent is not None and hmac.compare_digest(sent.reveal().encode(), value.encode())

    def masked(self, text: str) -> str:
        """``text`` without this client's key (nor a key set in the environment), a scoped
        token or an Authorization value: each becomes ``***``. For notebook text sent to a
        model, such as a traceback that printed a URL with the key in it."""
        sent, environment = self._transport.key(), resolve_key()
        keys = [key.reveal() for key in (sent, environment) if key is not None]
        return mask_credentials(text, *keys)

    def _chat_request(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        stream: bool,
        temperature: float | None,
        max_tokens: int | None,
        params: Mapping[str, Any],
    ) -> ApiRequest:
        catalog = self.cached_catalog()
        info = catalog.get(model) if catalog is not None else None
        if info is not None:
            max_tokens = fit_max_tokens(max_tokens, info.context_length, messages)
        request = self.routes.adapt(
            chat_request(
                messages, model, stream=stream, temperature=temperature,
                max_tokens=max_tokens, params=params,
            )
        )  # fmt: skip
        self._transport.check_key(request)  # a missing key fails at the call, not later
        return request

    def _chat_call(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        stream: bool,
        temperature: float | None,
        max_tokens: int | None,
        params: Mapping[str, Any],
        schema: Any,
    ) -> _StreamStart | Flow[ChatResult]:
        """A chat call, checked: what a stream opens with, or the whole flow of a reply."""
        if schema is not None:
            ask = self._typed_ask(messages, model, temperature, max_tokens, params, schema)
            if stream:
                return _StreamStart(self._typed_request(ask, stream=True), ask)
            return self._typed_flow(ask)
        request = self._chat_request(messages, model, stream, temperature, max_tokens, params)
        if stream:
            return _StreamStart(request, None)
        return completion_flow(request, model, self._price)

    # --- typed answers (``schema=``; see ``schema.py``) ------------------------------------

    def _typed_ask(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        params: Mapping[str, Any],
        schema: Any,
    ) -> _TypedAsk:
        """A chat that must answer ``schema`` (any spec ``Schema.from_spec`` takes)."""
        if "response_format" in params:
            raise InvalidArgumentError(
                "Pass schema= or response_format=, not both: the schema sets response_format."
            )
        typed = Schema.from_spec(schema)
        return _TypedAsk(messages, model, temperature, max_tokens, params, typed)

    def json_mode_only(self, model: str) -> bool:
        """Whether this server refused ``json_schema`` for ``model`` earlier in the session
        (then typed answers use JSON mode with the schema in the system message)."""
        return (self.base_url, model) in self._json_mode_models

    def remember_json_mode(self, model: str) -> None:
        """Use JSON mode for ``model`` on this server from now on, and say so once."""
        pair = (self.base_url, model)
        if pair in self._json_mode_models:
            return
        self._json_mode_models.add(pair)
        notice = self._transport.notice or _log.warning
        notice(
            f"{self.routes.server} does not take response_format json_schema for {model}: "
            "using JSON mode with the schema in the system message for this session."
        )

    def _typed_request(
        self, ask: _TypedAsk, stream: bool, extra: Sequence[Mapping[str, Any]] = ()
    ) -> ApiRequest:
        """The request of a typed chat: json_schema, or JSON mode once it was refused."""
        messages, response_format = ask.schema.request_parts(
            [*ask.messages, *extra], self.json_mode_only(ask.model)
        )
        params = {**ask.params, "response_format": response_format}
        return self._chat_request(
            messages, ask.model, stream, ask.temperature, ask.max_tokens, params
        )

    def _learn_refusal(self, error: APIStatusError, request: ApiRequest) -> bool:
        """Whether ``error`` refuses the json_schema that ``request`` sent (then JSON mode
        is remembered for its model, and the caller sends the request again)."""
        response_format = (request.json or {}).get("response_format")
        if not isinstance(response_format, Mapping) or error.status_code is None:
            return False
        if response_format.get("type") != "json_schema":
            return False
        if not refuses_json_schema(error.status_code, error.message):
            return False
        self.remember_json_mode(str(request.model or (request.json or {}).get("model")))
        return True

    def _typed_flow(self, ask: _TypedAsk) -> Flow[ChatResult]:
        """A whole typed chat: sent (again in JSON mode if json_schema is refused), then
        parsed, with one repair request if the reply does not fit (:meth:`_check_flow`)."""
        request = self._typed_request(ask, stream=False)
        started = time.perf_counter()
        try:
            raw = yield request
        except APIStatusError as exc:
            if not self._learn_refusal(exc, request):
                raise
            raw = yield self._typed_request(ask, stream=False)
        result = completion_result(raw, ask.model, started)
        self._price(result, ask.model)
        return (yield from self._check_flow(ask, result))

    def _check_flow(self, ask: _TypedAsk, result: ChatResult) -> Flow[ChatResult]:
        """``result`` with its typed value; if the reply is not JSON or breaks the schema,
        one repair request (the reply and what is wrong sent back). If that fails too, a
        SchemaValidationError whose ``result`` keeps the raw text (``error`` set)."""
        try:
            result.parsed = ask.schema.parse(result.text)
            return result
        except SchemaValidationError as exc:
            repair = ask.schema.repair_messages(result.text, exc)
        started = time.perf_counter()
        raw = yield self._typed_request(ask, stream=False, extra=repair)
        fixed = completion_result(raw, ask.model, started)
        self._price(fixed, ask.model)
        fixed.repairs = 1
        fixed.usage = sum_usage([result.usage, fixed.usage])
        fixed.time_to_first_token = result.time_to_first_token
        fixed.duration = (result.duration or 0.0) + (fixed.duration or 0.0)
        try:
            fixed.parsed = ask.schema.parse(fixed.text)
        except SchemaValidationError as exc:
            fixed.error = f"{exc.message.rstrip('.')} (after 1 repair); the raw reply is kept."
            raise SchemaValidationError(
                fixed.error, raw_text=fixed.text, problems=exc.problems, result=fixed
            ) from None
        return fixed

    def default_model(
        self, preferred: str, catalog: ModelCatalog | None, *, image: bool = False
    ) -> str:
        """The model to ask for when none is named: on DeepInfra ``preferred``; on another
        server ``preferred`` if it lists it, else (for chat) the first model it lists. A
        server that refused this key its list: that refusal (the chat would meet it too)."""
        if not self.routes.generic:
            return preferred
        refused = CATALOG_CACHE.refusal(self.catalog_key, self.key_fingerprint)
        if catalog is None and isinstance(refused, AuthenticationError):
            raise refused.with_traceback(None)
        names = [m.name for m in catalog.models] if catalog is not None else []
        if preferred in names:
            return preferred
        if names and not image:
            return names[0]
        listed = f"it lists {', '.join(names[:4])}" if names else "its model list is not available"
        raise InvalidArgumentError(
            f"No {'image ' if image else ''}model named, and {self.routes.server} does not "
            f"have the default {preferred!r} ({listed}): name one with -m/--model or model=."
        )

    @property
    def replaying(self) -> bool:
        """True when answers come from a recording."""
        return isinstance(self.recording, Replay)

    @property
    def catalog_key(self) -> str:
        """Catalogs are shared per API root; each recording (replayed or written) has its
        own, so a catalog fetched live never hides the recorded one, or escapes recording."""
        if self.recording is not None:
            files = ":".join(str(path.resolve()) for path in self.recording.paths)
            mode = "replay" if isinstance(self.recording, Replay) else "record"
            return f"{mode}:{files}"
        return self.base_url

    @property
    def key_fingerprint(self) -> str:
        """Tells this client's key from another's without showing it ('' for no key): a
        refused model list is asked for again with a new key."""
        return key_fingerprint(self._transport.key())

    def cached_catalog(self) -> ModelCatalog | None:
        """The catalog already in memory, with no I/O (None if not fetched yet)."""
        return CATALOG_CACHE.peek(self.catalog_key)

    def _price(self, result: ChatResult, model: str, kind: str = "chat") -> None:
        """Fill in the cost from the catalog prices of the requested ``model`` when the API
        did not report it, and add the request to this client's ledger (``usage``)."""
        catalog = self.cached_catalog()
        result.usage = priced(result.usage, catalog.get(model) if catalog is not None else None)
        self.usage.record(kind, model, result.usage)

    def _image_flow(self, request: ApiRequest, prompt: str, model: str) -> Flow[ImageResult]:
        """One image request, counted in the ledger as soon as its answer names the images."""

        def charge(images: int, cost: float | None) -> None:
            self.usage.record("images", model, images=images, cost=cost)

        return image_flow(request, prompt, model, self._cog_models, charge)

    # --- a prompt over a table (see ``maps``) ----------------------------------------------

    def plan_map(
        self,
        data: Any,
        template: str,
        model: str | None = None,
        *,
        system: str | None = None,
        temperature: float | None = DEFAULT_TEMPERATURE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        resume: bool = True,
        store: AnswerStore | None = None,
        schema: Any = None,
        **params: Any,
    ) -> MapJob:
        """Render ``template`` for every row of ``data`` and find the answers already on
        disk, without sending anything (for a cost preview before :meth:`run_map`). Rows
        with the same prompt are asked once. ``schema`` (see :meth:`DeepInfraClient.chat`)
        makes ``MapResult.output()`` a DataFrame with one typed column per field."""
        model = model or DEFAULT_MODEL
        if schema is not None and "response_format" in params:
            raise InvalidArgumentError(
                "Pass schema= or response_format=, not both: the schema sets response_format."
            )
        typed = Schema.from_spec(schema) if schema is not None else None
        if resume and store is None and self.recording is None:
            store = self.answer_store()  # recording/replay must see every request
        job = plan_map(
            data, template, model, system=system,
            temperature=temperature, max_tokens=max_tokens, params=params,
            store=store if resume else None, schema=typed,
            json_mode=typed is not None and self.json_mode_only(model),
        )  # fmt: skip
        for row in job.rows:  # another OpenAI-compatible server has its own chat route
            row.request = self.routes.adapt(row.request)
        if job.missing:
            self._transport.check_key(job.missing[0].request)
        return job

    def answer_store(self) -> AnswerStore:
        """The on-disk store of this server's map answers and of batch jobs (opened on first
        use)."""
        store = self._answers
        if store is None:
            store = self._answers = AnswerStore(server=self.base_url)
        return store

    def _close_store(self) -> None:
        store = self._answers
        if store is not None:
            store.close()
            self._answers = None

    def _map_run(
        self,
        job: MapJob,
        concurrency: int,
        on_progress: ProgressCallback | None,
        interval: float,
    ) -> MapRun:
        """A run of the job's missing rows, retried by this client's policy."""
        flow = RowScheduler(job, concurrency, self.retry)
        return MapRun(flow, partial(self._map_answer, job), on_progress, interval)

    def _map_result(self, run: MapRun) -> MapResult:
        """The job's rows once the run has ended, or the error that stopped it."""
        job = run.flow.job
        if job.json_mode:
            self.remember_json_mode(job.model)
        if run.flow.fatal is not None:
            raise run.flow.fatal
        return job.result(run.elapsed())

    def _map_answer(self, job: MapJob, row: MapRow, raw: RawResponse, started: float) -> ChatResult:
        """A row's answer, priced and counted; with a schema, parsed (a reply that does not
        fit raises SchemaValidationError, which the scheduler repairs once)."""
        model = str((row.request.json or {})["model"])
        result = completion_result(raw, model, started)
        self._price(result, model, "map")
        result.parsed = job.parse(result.text)
        result.repairs = row.repairs
        return result

    def _submit_flow(self, job: MapJob) -> Flow[BatchJob]:
        """Send the job's missing rows as a batch, and note it in the job's store."""
        batch = yield from submit_flow(batch_input(job), batch_metadata(job))
        note_batch(job, batch)
        return batch

    def _results_flow(
        self, batch: BatchJob | str, job: MapJob | None, *, collect: bool = False
    ) -> Flow[dict[str, BatchOutcome] | None]:
        """A finished batch's outcomes, merged into ``job`` and the store and charged to the
        ledger; ``collect``: None, and the job only marked, when it has no files."""
        if isinstance(batch, str):
            batch = yield from status_flow(batch)
        outcomes = yield from (collect_flow(batch) if collect else results_flow(batch))
        if job is not None:
            store = job.store
        else:  # recording and replay keep nothing on disk
            store = self.answer_store() if self.recording is None else None
        replayed = self.recording.paths[0].name if isinstance(self.recording, Replay) else None
        charges = merge_batch(batch, outcomes, job, store, self.cached_catalog(), replayed)
        for model, usage in charges:
            self.usage.record("batch", model, usage)
        return outcomes

    def _wait_flow(
        self, batch_id: str, poll_interval: float, on_status: Callable[[BatchJob], None] | None
    ) -> Flow[BatchJob]:
        return wait_flow(batch_id, poll_interval, on_status, self.replaying)

    def _describe(self) -> str:
        key = f"key from {self.key_source}" if self.key_source else "no key"
        if self.routes.generic:
            key = f"OpenAI-compatible, {key}"
        mode = f", {self.recording.describe()}" if self.recording else ""
        return f"{type(self).__name__}(base_url={self.base_url!r}, {key}{mode})"

    def __repr__(self) -> str:
        return self._describe()


class _BaseChatStream(Generic[ClientT]):
    """What the sync and async streams share: text so far, timing, and every decision
    about the reply (a refused json_schema, a lost connection, the typed check)."""

    def __init__(
        self, client: ClientT, request: ApiRequest, model: str, ask: _TypedAsk | None = None
    ) -> None:
        self._client: ClientT = client
        self.request = request
        self.model = model
        self.ask = ask  # a typed chat: parsed (and repaired once) when the reply ends
        self.decoder = ChatStreamDecoder(model, empty_is_overflow=client.routes.generic)
        self.result: ChatResult | None = None
        self.replayed_from: str | None = None
        self.started: float | None = None
        self.first_token_at: float | None = None

    @property
    def text(self) -> str:
        """Answer text received so far (also after an error or interrupt)."""
        return self.decoder.text

    @property
    def reasoning(self) -> str:
        """Reasoning text received so far."""
        return self.decoder.reasoning

    def _feed(self, chunk: bytes) -> list[ContentDelta | ReasoningDelta]:
        """The events in one chunk of the body; the first one sets time-to-first-token."""
        deltas = self.decoder.feed(chunk)
        if deltas and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        return deltas

    def _tail(self) -> Iterator[ContentDelta | ReasoningDelta]:
        """The events held back until the body ended, then a check that it ended well."""
        if not self.decoder.done:
            tail = self.decoder.close()
            if tail and self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            yield from tail
        self.decoder.check_end()

    def _fail(self, error: APIConnectionError, opened: bool) -> None:
        """Raise for a lost connection: as it is before the reply opened; as a broken
        stream that keeps its text while it ran; not at all after [DONE] (the reply is
        whole, a broken tail is moot)."""
        if not opened:
            raise error
        if not self.decoder.done:
            raise self.decoder.error(error.message.rstrip(".")) from None

    def _finish_flow(self) -> Flow[ChatResult]:
        """The result once the reply has ended, priced from the catalog if need be; a
        typed chat's is parsed, with one repair request if the reply does not fit."""
        self.result = result = self.partial()
        self._client._price(result, self.model)
        if self.ask is None:
            return result
        try:
            self.result = yield from self._client._check_flow(self.ask, result)
        except SchemaValidationError as exc:
            self.result = exc.result
            raise
        return self.result

    def partial(self, *, interrupted: bool = False, error: str | None = None) -> ChatResult:
        """A result from what has arrived, for replies that were stopped or broke."""
        now = time.perf_counter()
        return ChatResult(
            text=self.decoder.text,
            model=self.decoder.reported_model or self.model,
            reasoning=self.decoder.reasoning,
            finish_reason=self.decoder.finish_reason,
            usage=self.decoder.usage,
            interrupted=interrupted,
            error=error,
            replayed_from=self.replayed_from,
            time_to_first_token=self._since_start(self.first_token_at),
            duration=self._since_start(now),
        )

    def _refused(self, error: APIStatusError, opened: bool) -> bool:
        """Whether a typed chat's json_schema was refused before the reply opened: then
        :attr:`request` is the JSON-mode one, to send again (a 404 for a model never is)."""
        if self.ask is None or opened or isinstance(error, ModelNotFoundError):
            return False
        if not self._client._learn_refusal(error, self.request):
            return False
        self.request = self._client._typed_request(self.ask, stream=True)
        return True

    def _since_start(self, moment: float | None) -> float | None:
        if moment is None or self.started is None:
            return None
        return moment - self.started

    def __repr__(self) -> str:
        state = "finished" if self.result else ("open" if self.started else "not started")
        return f"{type(self).__name__}(model={self.model!r}, {state}, {len(self.text)} chars)"


class ChatStream(_BaseChatStream["DeepInfraClient"]):
    """A streamed reply: iterate for events (the last one is the :class:`ChatResult`).

    The connection opens on first iteration and is closed when the stream ends, breaks,
    is interrupted, or :meth:`close` is called; ``with`` guarantees it. ``text`` and
    ``reasoning`` hold what has arrived, whatever happened.
    """

    _events: Generator[ChatEvent, None, None] | None = None

    def __iter__(self) -> Iterator[ChatEvent]:
        if self._events is None:
            self._events = self._run()
        return self._events

    def _run(self) -> Generator[ChatEvent, None, None]:
        self.started = time.perf_counter()
        opened = False
        try:
            while True:
                try:
                    with self._client._transport.stream(self.request) as body:
                        opened = True
                        self.replayed_from = body.replayed_from
                        # After [DONE] the rest of the body (normally just its end) is still
                        # read: the connection can then be reused, and a recording sees a
                        # complete answer.
                        for chunk in body.chunks:
                            yield from self._feed(chunk)
                        yield from self._tail()
                    break
                except APIStatusError as exc:
                    if not self._refused(exc, opened):
                        raise
        except ModelNotFoundError as exc:
            raise self._client._suggest(exc) from None
        except APIConnectionError as exc:
            self._fail(exc, opened)
        yield self._client._drive(self._finish_flow())

    def close(self) -> None:
        """Stop reading and close the connection (the text so far stays available)."""
        if self._events is not None:
            self._events.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChatStream(_BaseChatStream["AsyncDeepInfraClient"]):
    """The async twin of :class:`ChatStream`: ``async for event in stream``."""

    _events: AsyncGenerator[ChatEvent, None] | None = None

    def __aiter__(self) -> AsyncIterator[ChatEvent]:
        if self._events is None:
            self._events = self._run()
        return self._events

    async def _run(self) -> AsyncGenerator[ChatEvent, None]:
        self.started = time.perf_counter()
        opened = False
        try:
            while True:
                try:
                    async with self._client._transport.stream(self.request) as body:
                        opened = True
                        self.replayed_from = body.replayed_from
                        async for chunk in body.chunks:  # read to the end, as ChatStream does
                            for delta in self._feed(chunk):
                                yield delta
                        for delta in self._tail():
                            yield delta
                    break
                except APIStatusError as exc:
                    if not self._refused(exc, opened):
                        raise
        except ModelNotFoundError as exc:
            raise await self._client._suggest(exc) from None
        except APIConnectionError as exc:
            self._fail(exc, opened)
        yield await self._client._drive(self._finish_flow())

    async def aclose(self) -> None:
        """Stop reading and close the connection (the text so far stays available)."""
        if self._events is not None:
            await self._events.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class DeepInfraClient(_ClientBase):
    """Blocking client for DeepInfra's chat, image and catalog endpoints (parameters: see
    ``_ClientBase``). This is what the magics use, on the main thread."""

    _transport: SyncTransport
    _transport_type = SyncTransport

    # --- chat ---------------------------------------------------------------------------

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = ...,
        *,
        stream: Literal[True] = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        schema: Any = ...,
        **params: Any,
    ) -> ChatStream: ...

    @overload
    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = ...,
        *,
        stream: Literal[False],
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        schema: Any = ...,
        **params: Any,
    ) -> ChatResult: ...

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        *,
        stream: bool = True,
        temperature: float | None = DEFAULT_TEMPERATURE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        schema: Any = None,
        **params: Any,
    ) -> ChatStream | ChatResult:
        """Chat completion. Streaming returns a :class:`ChatStream` of typed events;
        ``stream=False`` returns the final :class:`ChatResult`. Extra OpenAI parameters
        (``top_p``, ``stop``, ``response_format``, …) pass through unchanged.

        ``schema`` (a pydantic model, dataclass, TypedDict, Enum, JSON Schema dict or an
        inline spec such as ``"label: a|b, score: float"``) asks for a typed answer: the
        result's ``parsed`` holds it. A reply that does not fit gets one repair request;
        if that fails too, :class:`~deepinfra_magic.schema.SchemaValidationError` (its
        ``result`` keeps the raw text). A server that refuses ``json_schema`` gets JSON
        mode with the schema in the system message, from then on."""
        model = model or self.default_model(DEFAULT_MODEL, self._catalog_for_default())
        call = self._chat_call(messages, model, stream, temperature, max_tokens, params, schema)
        if isinstance(call, _StreamStart):
            return ChatStream(self, call.request, model, call.ask)
        return self._drive(call)

    # --- images -------------------------------------------------------------------------

    def generate_image(
        self, prompt: str, model: str | None = None, *, n: int = 1, **extra: Any
    ) -> ImageResult:
        """Text to image: ``{"prompt": prompt, **extra}`` to ``/v1/inference/{model}``;
        ``n`` images are requested concurrently (one per request)."""
        parts = [
            event.result
            for event in self.iter_images(prompt, model, n=n, **extra)
            if isinstance(event, ImageArrived)
        ]
        return ImageResult.merge(parts)

    def iter_images(
        self,
        prompt: str,
        model: str | None = None,
        *,
        n: int = 1,
        heartbeat: float | None = None,
        **extra: Any,
    ) -> Iterator[ImageEvent]:
        """Yield each request's images as they arrive (and, with ``heartbeat``, a waiting
        event every so many seconds). If some requests fail, the others still arrive and
        the first error is raised at the end."""
        model = model or self.default_model(
            DEFAULT_IMAGE_MODEL, self._catalog_for_default(), image=True
        )
        requests = _image_requests(self.routes, prompt, model, n, extra, self._cog_models)
        started = time.perf_counter()
        workers = min(n, MAX_CONCURRENT_IMAGES)

        def one(request: ApiRequest) -> ImageResult:
            return self._drive(self._image_flow(request, prompt, model))

        with ThreadFanOut[ImageResult](self._transport, workers, "deepinfra-image") as pool:
            progress = _Progress([pool.submit(partial(one, r)) for r in requests], started)
            while pool.pending:
                yield from progress.events(pool.wait(heartbeat))
        progress.raise_first()

    # --- a prompt over a table ---------------------------------------------------------

    def map(
        self,
        data: Any,
        template: str,
        model: str | None = None,
        *,
        concurrency: int = DEFAULT_MAP_CONCURRENCY,
        on_progress: ProgressCallback | None = None,
        **options: Any,
    ) -> MapResult:
        """Ask ``template`` (``{column}``, or ``{}`` for items) for every row of ``data``
        (DataFrame, Series, list…) with up to ``concurrency`` requests open. Answers are
        kept on disk, so a re-run sends only missing rows. Options: see :meth:`plan_map`.
        Ctrl-C raises :class:`MapInterrupted` (a KeyboardInterrupt) holding the rows so far."""
        job = self.plan_map(data, template, model, **options)
        return self.run_map(job, concurrency=concurrency, on_progress=on_progress)

    def run_map(
        self,
        job: MapJob,
        *,
        concurrency: int = DEFAULT_MAP_CONCURRENCY,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 0.25,
    ) -> MapResult:
        """Send the missing rows of a planned job; see :meth:`map`."""
        run = self._map_run(job, concurrency, on_progress, progress_interval)
        try:
            run_sync(self._transport, run)
        except KeyboardInterrupt:
            raise MapInterrupted(job.result(run.elapsed(), True)) from None
        return self._map_result(run)

    # --- the Batch API ---------------------------------------------------------------------

    def submit_batch(self, job: MapJob) -> BatchJob:
        """Send a planned job's missing rows to DeepInfra's Batch API (24 h, 20% cheaper);
        each row's ``custom_id`` is its answer-store key."""
        return self._drive(self._submit_flow(job), suggest=False)

    def batch(self, batch_id: str) -> BatchJob:
        """A batch's current state."""
        return self._drive(status_flow(batch_id), suggest=False)

    def batches(self, limit: int = 20) -> list[BatchJob]:
        """The account's most recent batches."""
        return self._drive(list_flow(limit), suggest=False)

    def wait_batch(
        self,
        batch_id: str,
        *,
        poll_interval: float = DEFAULT_BATCH_POLL_INTERVAL,
        on_status: Callable[[BatchJob], None] | None = None,
    ) -> BatchJob:
        """Poll until the batch finishes (Ctrl-C stops waiting; the job keeps running)."""
        return self._drive(self._wait_flow(batch_id, poll_interval, on_status), suggest=False)

    def batch_results(
        self, batch: BatchJob | str, job: MapJob | None = None
    ) -> dict[str, BatchOutcome]:
        """Download a finished batch's answers and errors, keep them in the answer store
        and put them on ``job``'s rows (match by ``custom_id``)."""
        outcomes = self._drive(self._results_flow(batch, job), suggest=False)
        return outcomes or {}

    def collect_batch(
        self, batch: BatchJob, job: MapJob | None = None
    ) -> dict[str, BatchOutcome] | None:
        """:meth:`batch_results` for a finished batch that may have no files (failed,
        expired): then None, and the store notes it so it is never picked up again."""
        return self._drive(self._results_flow(batch, job, collect=True), suggest=False)

    # --- catalog and key ----------------------------------------------------------------

    def models(self, *, refresh: bool = False) -> ModelCatalog:
        """The featured models, fetched once per process (``refresh=True`` refetches)."""
        return CATALOG_CACHE.get(
            self.catalog_key,
            self._fetch_catalog,
            refresh=refresh,
            disk=self._disk,
            credential=self.key_fingerprint,
        )

    def _fetch_catalog(self) -> Fetched:
        return self._drive(catalog_flow(self.routes), suggest=False)

    def _catalog_or_error(self) -> ModelCatalog | DeepInfraError:
        """The catalog, or the error that kept it, for callers that can do without."""
        try:
            return self.models()
        except DeepInfraError as exc:
            return exc

    def _catalog_for_default(self) -> ModelCatalog | None:
        """The catalog, when another server's default model must be chosen from it."""
        return _catalog_for_default(self._catalog_or_error()) if self.routes.generic else None

    def validate_key(self) -> bool | None:
        """Check the key with one free request to an endpoint that requires it: True if
        accepted, an AuthenticationError if refused, None when this server cannot tell
        (another server's model list may answer any key, or none, and the key-check route
        is not for a scoped token: it is checked by its first inference request)."""
        if self._sends_scoped_token():
            return None
        return self._drive(key_check_flow(self.routes), suggest=False)

    def run(self, flow: Flow[T]) -> T:
        """Run any flow (``classroom``'s minting, inspection, key list, usage) with this
        client's key, retries and recording."""
        return run_flow(flow, self._transport.send)

    def _drive(self, flow: Flow[T], *, suggest: bool = True) -> T:
        """Run a flow over this client's transport; a 404 for a model gets close matches."""
        try:
            return run_flow(flow, self._transport.send)
        except ModelNotFoundError as exc:
            if not suggest:
                raise
            raise self._suggest(exc) from None

    def _suggest(self, error: ModelNotFoundError) -> ModelNotFoundError:
        """Add close matches from the catalog to a 404 (the catalog is fetched if needed)."""
        return _with_close_matches(error, self._catalog_or_error())

    def close(self) -> None:
        """Close the connection pool (and the answer store, if opened)."""
        self._transport.close()
        self._close_store()

    def __enter__(self) -> DeepInfraClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncDeepInfraClient(_ClientBase):
    """The asyncio twin of :class:`DeepInfraClient`, for library users who ``await``."""

    _transport: AsyncTransport
    _transport_type = AsyncTransport

    @overload
    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = ...,
        *,
        stream: Literal[True] = ...,
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        schema: Any = ...,
        **params: Any,
    ) -> AsyncChatStream: ...

    @overload
    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = ...,
        *,
        stream: Literal[False],
        temperature: float | None = ...,
        max_tokens: int | None = ...,
        schema: Any = ...,
        **params: Any,
    ) -> ChatResult: ...

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str | None = None,
        *,
        stream: bool = True,
        temperature: float | None = DEFAULT_TEMPERATURE,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        schema: Any = None,
        **params: Any,
    ) -> AsyncChatStream | ChatResult:
        """Chat completion: ``stream = await client.chat(...)`` then ``async for``;
        ``stream=False`` returns the final :class:`ChatResult`; ``schema``: see
        :meth:`DeepInfraClient.chat`."""
        model = model or self.default_model(DEFAULT_MODEL, await self._catalog_for_default())
        call = self._chat_call(messages, model, stream, temperature, max_tokens, params, schema)
        if isinstance(call, _StreamStart):
            return AsyncChatStream(self, call.request, model, call.ask)
        return await self._drive(call)

    async def generate_image(
        self, prompt: str, model: str | None = None, *, n: int = 1, **extra: Any
    ) -> ImageResult:
        """Text to image, ``n`` concurrent requests; see :meth:`DeepInfraClient.generate_image`."""
        parts = [
            event.result
            async for event in self.iter_images(prompt, model, n=n, **extra)
            if isinstance(event, ImageArrived)
        ]
        return ImageResult.merge(parts)

    async def iter_images(
        self,
        prompt: str,
        model: str | None = None,
        *,
        n: int = 1,
        heartbeat: float | None = None,
        **extra: Any,
    ) -> AsyncIterator[ImageEvent]:
        """Yield each request's images as they arrive; see :meth:`DeepInfraClient.iter_images`."""
        model = model or self.default_model(
            DEFAULT_IMAGE_MODEL, await self._catalog_for_default(), image=True
        )
        requests = _image_requests(self.routes, prompt, model, n, extra, self._cog_models)
        started = time.perf_counter()

        async def one(request: ApiRequest) -> ImageResult:
            return await self._drive(self._image_flow(request, prompt, model))

        async with TaskFanOut[ImageResult](MAX_CONCURRENT_IMAGES) as pool:
            progress = _Progress([pool.submit(partial(one, r)) for r in requests], started)
            while pool.pending:
                for event in progress.events(await pool.wait(heartbeat)):
                    yield event
        progress.raise_first()

    async def map(
        self,
        data: Any,
        template: str,
        model: str | None = None,
        *,
        concurrency: int = DEFAULT_MAP_CONCURRENCY,
        on_progress: ProgressCallback | None = None,
        **options: Any,
    ) -> MapResult:
        """A prompt over every row; see :meth:`DeepInfraClient.map`."""
        job = self.plan_map(data, template, model, **options)
        return await self.run_map(job, concurrency=concurrency, on_progress=on_progress)

    async def run_map(
        self,
        job: MapJob,
        *,
        concurrency: int = DEFAULT_MAP_CONCURRENCY,
        on_progress: ProgressCallback | None = None,
        progress_interval: float = 0.25,
    ) -> MapResult:
        """Send the missing rows of a planned job; see :meth:`DeepInfraClient.map`."""
        run = self._map_run(job, concurrency, on_progress, progress_interval)
        await run_async(self._transport, run)
        return self._map_result(run)

    async def submit_batch(self, job: MapJob) -> BatchJob:
        """See :meth:`DeepInfraClient.submit_batch`."""
        return await self._drive(self._submit_flow(job), suggest=False)

    async def batch(self, batch_id: str) -> BatchJob:
        """A batch's current state."""
        return await self._drive(status_flow(batch_id), suggest=False)

    async def batches(self, limit: int = 20) -> list[BatchJob]:
        """The account's most recent batches."""
        return await self._drive(list_flow(limit), suggest=False)

    async def wait_batch(
        self,
        batch_id: str,
        *,
        poll_interval: float = DEFAULT_BATCH_POLL_INTERVAL,
        on_status: Callable[[BatchJob], None] | None = None,
    ) -> BatchJob:
        """See :meth:`DeepInfraClient.wait_batch`."""
        flow = self._wait_flow(batch_id, poll_interval, on_status)
        return await self._drive(flow, suggest=False)

    async def batch_results(
        self, batch: BatchJob | str, job: MapJob | None = None
    ) -> dict[str, BatchOutcome]:
        """See :meth:`DeepInfraClient.batch_results`."""
        outcomes = await self._drive(self._results_flow(batch, job), suggest=False)
        return outcomes or {}

    async def collect_batch(
        self, batch: BatchJob, job: MapJob | None = None
    ) -> dict[str, BatchOutcome] | None:
        """See :meth:`DeepInfraClient.collect_batch`."""
        return await self._drive(self._results_flow(batch, job, collect=True), suggest=False)

    async def models(self, *, refresh: bool = False) -> ModelCatalog:
        """The featured models, fetched once per process (``refresh=True`` refetches)."""
        return await CATALOG_CACHE.aget(
            self.catalog_key,
            self._fetch_catalog,
            refresh=refresh,
            disk=self._disk,
            credential=self.key_fingerprint,
        )

    async def _fetch_catalog(self) -> Fetched:
        return await self._drive(catalog_flow(self.routes), suggest=False)

    async def _catalog_or_error(self) -> ModelCatalog | DeepInfraError:
        """The catalog, or the error that kept it, for callers that can do without."""
        try:
            return await self.models()
        except DeepInfraError as exc:
            return exc

    async def _catalog_for_default(self) -> ModelCatalog | None:
        """The catalog, when another server's default model must be chosen from it."""
        generic = self.routes.generic
        return _catalog_for_default(await self._catalog_or_error()) if generic else None

    async def validate_key(self) -> bool | None:
        """See :meth:`DeepInfraClient.validate_key`."""
        if self._sends_scoped_token():
            return None
        return await self._drive(key_check_flow(self.routes), suggest=False)

    async def run(self, flow: Flow[T]) -> T:
        """Run any flow with this client's key; see :meth:`DeepInfraClient.run`."""
        return await arun_flow(flow, self._transport.send)

    async def _drive(self, flow: Flow[T], *, suggest: bool = True) -> T:
        """Run a flow over this client's transport; see :meth:`DeepInfraClient._drive`."""
        try:
            return await arun_flow(flow, self._transport.send)
        except ModelNotFoundError as exc:
            if not suggest:
                raise
            raise await self._suggest(exc) from None

    async def _suggest(self, error: ModelNotFoundError) -> ModelNotFoundError:
        """See :meth:`DeepInfraClient._suggest`."""
        return _with_close_matches(error, await self._catalog_or_error())

    async def aclose(self) -> None:
        """Close the connection pool (and the answer store, if opened)."""
        await self._transport.aclose()
        self._close_store()

    async def __aenter__(self) -> AsyncDeepInfraClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
