"""The fake server's Files and Batch API (``/v1/openai/files``, ``/v1/openai/batches``).

Shapes follow DeepInfra's documentation and OpenAPI, and OpenAI's where DeepInfra says it is
the same ("OpenAI-compatible: if you've used OpenAI's Batch API, the workflow is identical",
docs.deepinfra.com/batch/introduction). Sources, cited at each behaviour below:

- [DI-intro] docs.deepinfra.com/batch/introduction (input lines, workflow, terminal states)
- [DI-batch] docs.deepinfra.com/batch/batch-endpoints (create, the Batch object)
- [DI-files] docs.deepinfra.com/batch/file-endpoints (the FileObject, create file)
- [OAPI] ../shared/reference/deepinfra-openapi.json: ``OpenAIBatchesIn``, ``OpenAIBatch``,
  ``Body_openai_files_v1_openai_files_post``
- [OAI] OpenAI's Batch API reference: the list shape, ``GET /files/{id}/content``, and the
  ``BatchRequestOutput`` line (``id``, ``custom_id``, ``response{status_code, request_id,
  body}``, ``error``) of output and error files.

A batch advances one state per ``GET /v1/openai/batches/{id}``: validating → in_progress →
completed, so a client polls a few times and tests need no clock. Answers are computed with
the chat planner of ``faults`` (scripts included), so batch answers match live ones.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import ServerConfig
    from .server import FakeDeepInfra, _Handler

FILES_PATH = "/v1/openai/files"
BATCHES_PATH = "/v1/openai/batches"
PREFIXES = (FILES_PATH, BATCHES_PATH)
# [OAPI] OpenAIBatchesIn.endpoint enum; [DI-intro] also lists /v1/embeddings.
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
FILE_LIMIT = 200 * 1024 * 1024  # [DI-files] "accepts files of up to 200 MB"
DAY = 24 * 3600
THIRTY_DAYS = 30 * DAY  # [DI-files] expires_after defaults to 2592000 s (30 days)


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        """[DI-files] The FileObject."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.created_at + THIRTY_DAYS,
            "filename": self.filename,
            "purpose": self.purpose,
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    metadata: dict[str, Any] | None
    created_at: int
    status: str = "validating"  # [DI-batch] a new batch answers "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: dict[str, Any] | None = None
    counts: dict[str, int] = field(
        default_factory=lambda: {"total": 0, "completed": 0, "failed": 0}
    )
    usage: dict[str, int] | None = None
    times: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """[OAPI] OpenAIBatch (required: id, object, endpoint, input_file_id,
        completion_window, status, created_at, expires_at); [DI-intro] adds usage."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": self.errors,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": self.times.get("in_progress_at"),
            "expires_at": self.created_at + DAY,
            "finalizing_at": self.times.get("finalizing_at"),
            "completed_at": self.times.get("completed_at"),
            "failed_at": self.times.get("failed_at"),
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": dict(self.counts),
            "metadata": self.metadata,
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body


class BatchState:
    """Files and batches of one fake server (cleared by ``FakeDeepInfra.reset``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[str, _File] = {}
        self.batches: dict[str, _Batch] = {}

    def add_file(self, filename: str, purpose: str, data: bytes) -> _File:
        """Keep an uploaded or generated file."""
        file = _File(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, data, int(time.time()))
        with self.lock:
            self.files[file.id] = file
        return file


def handle(handler: _Handler, path: str, payload: Any, config: ServerConfig) -> None:
    """Serve one Files/Batch API request (the caller has checked the prefix)."""
    if not handler._authorized(config):  # [OAPI] every files/batches path has HTTPBearer
        return
    fake = handler.server.fake
    state = fake.batch_state
    method = handler.command
    if method == "POST" and path == FILES_PATH:
        _upload(handler, state)
    elif method == "GET" and path.startswith(FILES_PATH + "/") and path.endswith("/content"):
        file = state.files.get(path[len(FILES_PATH) + 1 : -len("/content")])
        if file is None:
            handler._send_json(404, {"detail": "File not found"})
        else:
            # [OAI] file content is the raw bytes (the SDK returns it as binary content)
            handler._send_bytes(200, file.data, "application/octet-stream")
    elif method == "GET" and path.startswith(FILES_PATH + "/"):
        file = state.files.get(path[len(FILES_PATH) + 1 :])
        if file is None:
            handler._send_json(404, {"detail": "File not found"})
        else:
            handler._send_json(200, file.to_json())
    elif method == "POST" and path == BATCHES_PATH:
        _create(handler, state, payload)
    elif method == "GET" and path == BATCHES_PATH:
        # [OAI] list: {"object": "list", "data": [...], "first_id", "last_id", "has_more"}
        with state.lock:
            batches = sorted(state.batches.values(), key=lambda b: b.created_at, reverse=True)
        data = [batch.to_json() for batch in batches]
        handler._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            },
        )
    elif method == "GET" and path.startswith(BATCHES_PATH + "/"):
        batch = state.batches.get(path[len(BATCHES_PATH) + 1 :])
        if batch is None:
            handler._send_json(404, {"detail": "Batch not found"})
            return
        _advance(fake, state, batch, config)
        handler._send_json(200, batch.to_json())
    else:
        handler._send_json(404, {"detail": "Not Found"})


def _upload(handler: _Handler, state: BatchState) -> None:
    """[OAPI] Body_openai_files_v1_openai_files_post: multipart with ``purpose`` and ``file``
    (both required; 422 otherwise); [DI-files] only purpose "batch" is supported."""
    content_type = handler.headers.get("Content-Type", "")
    raw = handler.raw_body
    if not content_type.startswith("multipart/form-data"):
        handler._send_json(422, _missing("file"))
        return
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            data = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), data if isinstance(data, bytes) else b"")
    if "purpose" not in fields:
        handler._send_json(422, _missing("purpose"))
        return
    if "file" not in fields:
        handler._send_json(422, _missing("file"))
        return
    purpose = fields["purpose"][1].decode()
    if purpose != "batch":
        handler._send_json(400, {"detail": "Only purpose 'batch' is supported"})
        return
    filename, data = fields["file"]
    if len(data) > FILE_LIMIT:
        handler._send_json(400, {"detail": "File larger than 200 MB"})
        return
    handler._send_json(200, state.add_file(filename or "upload.jsonl", purpose, data).to_json())


def _missing(name: str) -> dict[str, Any]:
    return {"detail": [{"loc": ["body", name], "msg": "field required", "type": "missing"}]}


def _create(handler: _Handler, state: BatchState, payload: Any) -> None:
    """[OAPI] OpenAIBatchesIn: input_file_id, endpoint (enum), completion_window (const
    "24h") and metadata are required; a bad value is a 422."""
    if not isinstance(payload, dict):
        handler._send_json(422, _missing("input_file_id"))
        return
    for name in ("input_file_id", "endpoint", "completion_window", "metadata"):
        if name not in payload:
            handler._send_json(422, _missing(name))
            return
    if payload["completion_window"] != "24h":  # [DI-batch] only "24h" is supported
        handler._send_json(422, _missing("completion_window"))
        return
    if payload["endpoint"] not in ENDPOINTS:
        handler._send_json(422, _missing("endpoint"))
        return
    if payload["input_file_id"] not in state.files:
        handler._send_json(404, {"detail": "File not found"})
        return
    batch = _Batch(
        f"batch_{uuid.uuid4().hex[:24]}",
        payload["input_file_id"],
        payload["endpoint"],
        payload["metadata"],
        int(time.time()),
    )
    with state.lock:
        state.batches[batch.id] = batch
    handler._send_json(200, batch.to_json())


def _advance(fake: FakeDeepInfra, state: BatchState, batch: _Batch, config: ServerConfig) -> None:
    """One step along validating → in_progress → completed (or failed at validation)."""
    now = int(time.time())
    with state.lock:
        if batch.status == "validating":
            problem = _validate(state.files[batch.input_file_id].data, batch.endpoint)
            if problem:
                # [OAI] a batch that fails validation is "failed" with errors.data[]
                batch.status = "failed"
                batch.errors = {"object": "list", "data": [problem]}
                batch.times["failed_at"] = now
                return
            batch.status = "in_progress"
            batch.times["in_progress_at"] = now
            lines = state.files[batch.input_file_id].data.decode().splitlines()
            batch.counts["total"] = sum(1 for line in lines if line.strip())
            return
        if batch.status != "in_progress":
            return
        data = state.files[batch.input_file_id].data
    outputs, errors, usage = _run(fake, data, config)
    with state.lock:
        batch.counts.update(completed=len(outputs), failed=len(errors))
        batch.usage = usage
        if outputs:
            batch.output_file_id = _result_file(state, batch, "output", outputs)
        if errors:
            batch.error_file_id = _result_file(state, batch, "errors", errors)
        batch.status = (
            "completed"  # [DI-intro] terminal states: completed, failed, expired, cancelled
        )
        batch.times["finalizing_at"] = batch.times["completed_at"] = now


def _result_file(state: BatchState, batch: _Batch, kind: str, lines: list[dict[str, Any]]) -> str:
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    # [DI-files] purpose "batch-output" for the files a batch writes
    file = _File(
        f"file-{uuid.uuid4().hex[:24]}",
        f"{batch.id}_{kind}.jsonl",
        "batch-output",
        text.encode(),
        int(time.time()),
    )
    state.files[file.id] = file
    return file.id


def _validate(data: bytes, endpoint: str) -> dict[str, Any] | None:
    """[DI-intro] each line: custom_id unique, method POST, url equal to the batch endpoint,
    and all requests on the same model."""
    seen: set[str] = set()
    models: set[str] = set()
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            return {"code": "invalid_json_line", "message": "Line is not JSON", "line": number}
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not custom_id or custom_id in seen:
            return {
                "code": "duplicate_custom_id",
                "message": "custom_id must be unique",
                "line": number,
            }
        seen.add(custom_id)
        if item.get("method") != "POST" or item.get("url") != endpoint:
            return {"code": "invalid_url", "message": "url must match the endpoint", "line": number}
        body = item.get("body")
        models.add(str(body.get("model")) if isinstance(body, dict) else "")
    if len(models) > 1:
        return {
            "code": "mixed_models",
            "message": "All requests must use the same model",
            "line": 1,
        }
    return None


def _run(
    fake: FakeDeepInfra, data: bytes, config: ServerConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """Answer every line as the chat endpoint would; [OAI] failed requests (non-2xx) go to
    the error file, with the same line shape."""
    from . import structured
    from .faults import _NO_FAULT, _chat_body_problem, _plan_chat
    from .replies import _last_user_text
    from .wire import model_unavailable, validation_error

    outputs: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        body = item["body"]
        request_id = f"req_{uuid.uuid4().hex[:16]}"
        entry = config.model(str(body.get("model"))) if isinstance(body, dict) else None
        problem = _chat_body_problem(body)
        if problem is not None:
            status, answer = 422, validation_error(problem)
        elif not (entry is not None and entry.is_text) and body["model"] not in config.extra_models:
            status, answer = 404, model_unavailable()
        else:
            # A line's body is a real-time request: its response_format is honoured alike.
            script = fake._take_script(_last_user_text(body["messages"]))
            script = script or structured.scripted(body)
            plan = _plan_chat(body, entry, _NO_FAULT, script, config)
            status, answer = 200, plan.completion()
            usage["input_tokens"] += plan.usage["prompt_tokens"]
            usage["output_tokens"] += plan.usage["completion_tokens"]
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        result = {
            "id": f"batch_req_{uuid.uuid4().hex[:16]}",
            "custom_id": item["custom_id"],
            "response": {"status_code": status, "request_id": request_id, "body": answer},
            "error": None,
        }
        (outputs if status == 200 else errors).append(result)
    return outputs, errors, usage
