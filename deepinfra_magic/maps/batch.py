"""DeepInfra's Batch API (OpenAI-compatible) for a map: requests, answers, flows, and the
merge of a batch's answers into a planned job.

A job is a JSONL file of chat requests, one per row with its ``custom_id`` (the row's
answer-store key), uploaded to ``/v1/openai/files`` (purpose ``batch``) and run by
``/v1/openai/batches`` within a 24 h window, 20% below real-time prices. Its output and
error files map back to rows by ``custom_id``. Sources: docs.deepinfra.com/batch/introduction,
/batch/batch-endpoints, /batch/file-endpoints, and the OpenAPI paths ``/v1/openai/files``,
``/v1/openai/batches`` and ``/v1/openai/batches/{batch_id}``.

Rules it keeps: no I/O (each operation is a ``_flows`` flow, polling included, which the
clients' ``_drive`` runs); :func:`merge_batch` is a pure function of what it is handed
(the job's rows and the store it is given are all it writes; what to charge is returned,
not recorded); the batch price is the catalog price (``ModelInfo.cost``) times
:data:`DISCOUNT`; a job already submitted for the same rows is picked up, never paid twice.
A job sends each distinct prompt once (rows sharing it share its answer); with a schema
every line carries the same ``response_format`` as a real-time row, and an answer is
parsed the same way (one that does not fit fails its rows: a batch has no repair turn).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._flows import Flow, Sleep
from .._protocol import ApiRequest, parse_json
from .._text import shorten
from ..errors import InvalidArgumentError, InvalidResponseError
from ..schema import SchemaValidationError
from ..types import Usage
from ..usage import priced
from .rows import MapJob, MapRow
from .store import AnswerStore

if TYPE_CHECKING:
    from ..catalog import ModelCatalog

__all__ = [
    "DISCOUNT",
    "BatchJob",
    "BatchOutcome",
    "batch_input",
    "batch_metadata",
    "collect_flow",
    "list_flow",
    "list_request",
    "merge_batch",
    "note_batch",
    "parse_batch_list",
    "pending_batch",
    "poll_delay",
    "results_flow",
    "retrieve_request",
    "status_flow",
    "submit_flow",
    "wait_flow",
]

FILES_PATH = "/v1/openai/files"
BATCHES_PATH = "/v1/openai/batches"
BATCH_ENDPOINT = "/v1/chat/completions"  # the ``url`` of every line and the batch's endpoint
COMPLETION_WINDOW = "24h"  # the only window DeepInfra accepts
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
DISCOUNT = 0.8  # batch jobs are billed 20% below real-time prices


@dataclass(frozen=True)
class BatchJob:
    """A batch as the API describes it."""

    id: str
    status: str
    created_at: int | None = None
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: Mapping[str, int] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    errors: Any = None

    @classmethod
    def from_json(cls, payload: Any) -> BatchJob:
        """Read a Batch object, or a one-line error when it is not one."""
        if not isinstance(payload, Mapping) or not payload.get("id"):
            raise InvalidResponseError(
                f"Unexpected batch answer: {shorten(json.dumps(payload, default=str))}."
            )
        counts = payload.get("request_counts")
        metadata = payload.get("metadata")
        return cls(
            id=str(payload["id"]),
            status=str(payload.get("status") or "unknown"),
            created_at=payload.get("created_at"),
            input_file_id=payload.get("input_file_id"),
            output_file_id=payload.get("output_file_id"),
            error_file_id=payload.get("error_file_id"),
            request_counts={k: int(v) for k, v in counts.items()} if counts else {},
            metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
            errors=payload.get("errors"),
        )

    @property
    def finished(self) -> bool:
        """True in a terminal state: completed, failed, expired or cancelled."""
        return self.status in TERMINAL

    def describe(self) -> str:
        """One line: id, status and counts."""
        counts = self.request_counts
        done = ""
        if counts.get("total"):
            done = f" · {counts.get('completed', 0)}/{counts['total']} done"
            if counts.get("failed"):
                done += f", {counts['failed']} failed"
        why = f" · {_errors_text(self.errors)}" if self.errors else ""
        return f"{self.id}: {self.status}{done}{why}"


def _errors_text(errors: Any) -> str:
    data = errors.get("data") if isinstance(errors, Mapping) else errors
    if isinstance(data, list) and data:
        first = data[0]
        text = first.get("message") if isinstance(first, Mapping) else str(first)
        return shorten(str(text), 160)
    return shorten(json.dumps(errors, default=str), 160)


@dataclass(frozen=True)
class BatchOutcome:
    """One line of the output or error file: the answer text, or why it failed."""

    custom_id: str
    text: str | None
    usage: Usage | None = None
    error: str | None = None


# --- requests ---------------------------------------------------------------------------


def batch_lines(requests: Iterable[tuple[str, Mapping[str, Any]]]) -> bytes:
    """The JSONL input: ``custom_id``, ``method``, ``url`` and the real-time ``body``."""
    lines = []
    for custom_id, body in requests:
        clean = {key: value for key, value in body.items() if key not in ("stream",)}
        line = {"custom_id": custom_id, "method": "POST", "url": BATCH_ENDPOINT, "body": clean}
        lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    if not lines:
        raise InvalidArgumentError("Nothing to submit: every row already has an answer.")
    return ("\n".join(lines) + "\n").encode()


def multipart(fields: Mapping[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with the fields and one file. The boundary comes from
    the content, so the same upload is the same bytes (and a recording can match it)."""
    boundary = "deepinfra-magic-" + hashlib.sha256(data).hexdigest()[:24]
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: application/jsonl\r\n\r\n"
    )
    body = "".join(parts).encode() + head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload_request(jsonl: bytes, filename: str = "deepinfra-map.jsonl") -> ApiRequest:
    """Upload the input file (purpose ``batch``); the answer is a FileObject."""
    body, content_type = multipart({"purpose": "batch"}, filename, jsonl)
    # "billable": sent again only after a 429, so a lost answer never makes a second file
    return ApiRequest("POST", FILES_PATH, content=body, content_type=content_type, kind="billable")


def create_request(file_id: str, metadata: Mapping[str, str]) -> ApiRequest:
    """Create the batch over an uploaded file, on chat completions, within 24 h."""
    body = {
        "input_file_id": file_id,
        "endpoint": BATCH_ENDPOINT,
        "completion_window": COMPLETION_WINDOW,
        "metadata": dict(metadata),
    }
    return ApiRequest("POST", BATCHES_PATH, json=body, kind="billable")  # never two jobs


def retrieve_request(batch_id: str) -> ApiRequest:
    """The batch's current state."""
    if not batch_id or "/" in batch_id:
        raise InvalidArgumentError(f"{batch_id!r} is not a batch id (see %deepinfra_batches).")
    return ApiRequest("GET", f"{BATCHES_PATH}/{batch_id}")


def list_request(limit: int = 20) -> ApiRequest:
    """The most recent batches."""
    return ApiRequest("GET", f"{BATCHES_PATH}?limit={int(limit)}")


def content_request(file_id: str) -> ApiRequest:
    """The bytes of an output or error file."""
    return ApiRequest("GET", f"{FILES_PATH}/{file_id}/content")


# --- answers ----------------------------------------------------------------------------


def parse_batch_list(payload: Any) -> list[BatchJob]:
    """Batches of a list answer (``{"data": [...]}``, or a bare list)."""
    entries = payload.get("data") if isinstance(payload, Mapping) else payload
    if not isinstance(entries, list):
        raise InvalidResponseError("The batch list answer was not a list of batches.")
    return [BatchJob.from_json(entry) for entry in entries if isinstance(entry, Mapping)]


def parse_outcomes(body: bytes) -> dict[str, BatchOutcome]:
    """Lines of an output or error file, by ``custom_id`` (their order is not guaranteed)."""
    outcomes: dict[str, BatchOutcome] = {}
    for number, line in enumerate(body.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise InvalidResponseError(
                f"Line {number} of a batch result file is not JSON: {shorten(line, 80)!r}."
            ) from None
        if not isinstance(item, Mapping) or not item.get("custom_id"):
            continue
        outcomes[str(item["custom_id"])] = _outcome(item)
    return outcomes


def _outcome(item: Mapping[str, Any]) -> BatchOutcome:
    custom_id = str(item["custom_id"])
    response = item.get("response")
    error = item.get("error")
    if isinstance(error, Mapping) and error:
        return BatchOutcome(custom_id, None, error=_error_text(error))
    if not isinstance(response, Mapping):
        return BatchOutcome(custom_id, None, error="no response in the batch result")
    status = response.get("status_code")
    body = response.get("body")
    if status != 200 or not isinstance(body, Mapping):
        detail = body.get("error") or body.get("detail") if isinstance(body, Mapping) else body
        return BatchOutcome(custom_id, None, error=f"HTTP {status}: {_error_text(detail)}")
    choices = body.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    text = message.get("content") if isinstance(message, Mapping) else None
    usage = body.get("usage")
    return BatchOutcome(
        custom_id,
        str(text or ""),
        Usage.from_json(usage) if isinstance(usage, Mapping) else None,
    )


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return shorten(str(error.get("message") or error.get("detail") or json.dumps(error)), 200)
    return shorten(str(error), 200)


# --- flows ------------------------------------------------------------------------------


def status_flow(batch_id: str) -> Flow[BatchJob]:
    """A batch's current state."""
    raw = yield retrieve_request(batch_id)
    return BatchJob.from_json(parse_json(raw, "batch"))


def list_flow(limit: int = 20) -> Flow[list[BatchJob]]:
    """The account's most recent batches."""
    raw = yield list_request(limit)
    return parse_batch_list(parse_json(raw, "batch list"))


def submit_flow(
    requests: Iterable[tuple[str, Mapping[str, Any]]], metadata: Mapping[str, str]
) -> Flow[BatchJob]:
    """Upload the JSONL, then create the batch over it."""
    raw = yield upload_request(batch_lines(requests))
    uploaded = parse_json(raw, "file upload")
    file_id = uploaded.get("id") if isinstance(uploaded, Mapping) else None
    if not file_id:
        raise InvalidResponseError(f"The file upload answer had no id: {shorten(str(uploaded))}.")
    raw = yield create_request(str(file_id), metadata)
    return BatchJob.from_json(parse_json(raw, "batch"))


def results_flow(job: BatchJob) -> Flow[dict[str, BatchOutcome]]:
    """Download the output and error files of a finished batch."""
    outcomes: dict[str, BatchOutcome] = {}
    for file_id in (job.error_file_id, job.output_file_id):  # answers win over errors
        if file_id:
            raw = yield content_request(file_id)
            outcomes.update(parse_outcomes(raw.body))
    return outcomes


def wait_flow(
    batch_id: str,
    poll_interval: float,
    on_status: Callable[[BatchJob], None] | None,
    replaying: bool,
) -> Flow[BatchJob]:
    """Poll until the batch finishes, a little less often each time (a replay answers
    at once: it does not wait)."""
    polls = 0
    while True:
        batch = yield from status_flow(batch_id)
        if on_status is not None:
            on_status(batch)
        if batch.finished:
            return batch
        if not replaying:
            yield Sleep(poll_delay(poll_interval, polls))
        polls += 1


def collect_flow(batch: BatchJob) -> Flow[dict[str, BatchOutcome] | None]:
    """A finished batch's outcomes, or None when it has no files (an expired or failed
    job keeps what it did, so files are read whatever the status)."""
    if not (batch.output_file_id or batch.error_file_id):
        return None
    return (yield from results_flow(batch))


def poll_delay(interval: float, polls: int) -> float:
    """Wait a little longer after each poll, up to a minute."""
    return float(min(60.0, interval * 1.5 ** min(polls, 12)))


# --- a planned job and its batch --------------------------------------------------------


def batch_input(job: MapJob) -> list[tuple[str, Mapping[str, Any]]]:
    """(custom_id, body) of each row still missing: the custom_id is the row's key."""
    return [(row.key, row.request.json or {}) for row in job.missing]


def batch_metadata(job: MapJob) -> dict[str, str]:
    """What the batch carries to say where it came from (its model names its rows' model)."""
    return {"source": "deepinfra-magic map", "model": job.model, "rows": str(len(job.missing))}


def note_batch(job: MapJob, batch: BatchJob) -> None:
    """Remember in the job's store that ``batch`` answers its missing rows."""
    if job.store is not None:
        job.store.add_batch(batch.id, job.model, [row.key for row in job.missing], batch.status)


def pending_batch(job: MapJob) -> str | None:
    """The id of a job submitted earlier for some of these missing rows and not yet
    merged: pick it up instead of paying twice (None: submit a new one)."""
    if job.store is None or not job.missing:
        return None
    return job.store.pending_batch_for(row.key for row in job.missing)


def merge_batch(
    batch: BatchJob,
    outcomes: Mapping[str, BatchOutcome] | None,
    job: MapJob | None,
    store: AnswerStore | None,
    catalog: ModelCatalog | None,
    replayed_from: str | None,
) -> list[tuple[str, Usage | None]]:
    """Put a finished batch's answers on ``job``'s rows and in ``store`` (each matched by
    ``custom_id``; failed rows keep their error), priced at the batch price. Returns
    (model, usage) for each answer, for the caller's ledger. ``outcomes`` None: the
    batch had nothing to collect, and is only marked so it is never picked up again."""
    if outcomes is None:
        if store is not None:
            store.set_batch_status(batch.id, batch.status)
        return []
    model = str(batch.metadata.get("model") or (job.model if job is not None else "batch"))
    charges: list[tuple[str, Usage | None]] = []
    for key, outcome in outcomes.items():
        group = job.groups.get(key, []) if job is not None else []
        row: MapRow | None = group[0] if group else None
        if outcome.text is None:
            if job is not None and row is not None:
                job.fail_row(row, outcome.error)
            continue
        row_model = row.model if row is not None else model
        info = catalog.get(row_model) if catalog is not None else None
        usage = priced(outcome.usage, info, DISCOUNT)
        charges.append((row_model, usage))
        if job is not None and row is not None:
            try:
                parsed = job.parse(outcome.text)
            except SchemaValidationError as exc:
                job.fail_row(row, exc.message)
                continue  # not kept: a re-run asks again
            for each in group:
                each.text, each.parsed, each.error = outcome.text, parsed, None
                each.usage = usage if each is row else None
                each.replayed_from = replayed_from or each.replayed_from
        if store is not None:
            store.put(key, row_model, outcome.text, usage)
    if store is not None:
        store.set_batch_status(batch.id, batch.status, merged=True)
    return charges
