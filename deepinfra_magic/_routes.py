"""Which kind of server the base URL names, and the routes to use there (sans-I/O).

DeepInfra: chat at ``{root}/v1/openai/chat/completions``, its catalog at
``{root}/models/featured`` and images at ``{root}/v1/inference/{model}``. Any other
OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, a LiteLLM proxy): chat at
``{root}/chat/completions``, models at ``{root}/models`` and images at
``{root}/images/generations``, where the root is usually ``http://HOST:PORT/v1``.

The rules this module keeps: the flavour is decided once, from the URL, unless a setting
forces it; ``Routes.for_url`` is the one place that strips ``/v1/openai`` from a URL; a
generic server is sent no key and only the fields a request needs (no ``n`` or
``response_format`` for images); what a generic model list says about a model (its
context length) is read here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._protocol import (
    CATALOG_PATH,
    CHAT_PATH,
    MODELS_PATH,
    ApiRequest,
    check_image_request,
    image_request,
)
from .errors import InvalidResponseError

__all__ = ["Routes", "decide_flavour", "fit_max_tokens"]

DEEPINFRA_DOMAIN = "deepinfra.com"
OPENAI_SUFFIX = "/v1/openai"
GENERIC_CHAT = "/chat/completions"
GENERIC_MODELS = "/models"
GENERIC_IMAGES = "/images/generations"
# Fields a generic server's model list may use for the context length (vLLM: max_model_len;
# llama.cpp's llama-server: meta.n_ctx, read by _context_length).
_CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")


def decide_flavour(url: str, forced: str = "auto") -> str:
    """DeepInfra's routes for its host or a path ending in ``/v1/openai``, else generic ones
    (``forced``: "deepinfra" or "generic" from a setting, "auto" to decide)."""
    if forced != "auto":
        return forced
    parts = urlsplit(url)
    if _is_deepinfra_host(parts.hostname):
        return "deepinfra"
    return "deepinfra" if parts.path.rstrip("/").endswith(OPENAI_SUFFIX) else "generic"


def _is_deepinfra_host(hostname: str | None) -> bool:
    host = (hostname or "").lower()
    return host == DEEPINFRA_DOMAIN or host.endswith("." + DEEPINFRA_DOMAIN)


@dataclass(frozen=True)
class Routes:
    """The server's flavour, the root requests are relative to, and where each call goes."""

    flavour: str
    root: str
    forced: bool = False

    @classmethod
    def for_url(cls, url: str, forced: str = "auto") -> Routes:
        """Routes for a validated base URL (DeepInfra's root loses its ``/v1/openai``)."""
        flavour = decide_flavour(url, forced)
        root = url.rstrip("/")
        parts = urlsplit(root)
        if flavour == "deepinfra" and parts.path.endswith(OPENAI_SUFFIX):
            root = root[: -len(OPENAI_SUFFIX)]
        elif _is_deepinfra_host(parts.hostname) and parts.path == "/v1":
            root = f"{parts.scheme}://{parts.netloc}"  # DeepInfra's own host: its API root
        return cls(flavour, root, forced != "auto")

    @property
    def generic(self) -> bool:
        """True for any OpenAI-compatible server other than DeepInfra."""
        return self.flavour == "generic"

    @property
    def chat(self) -> str:
        """The chat completions path."""
        return GENERIC_CHAT if self.generic else CHAT_PATH

    @property
    def server(self) -> str | None:
        """How errors name another server (None: DeepInfra, named as such)."""
        return f"the server at {self.root}" if self.generic else None

    def url(self, path: str) -> str:
        """The absolute URL of an API path (for messages)."""
        return path if path.startswith(("http://", "https://")) else self.root + path

    def describe(self) -> str:
        """Which server, for status lines (and whether a setting chose its flavour)."""
        how = " (flavour set by setting)" if self.forced else ""
        kind = "OpenAI-compatible server" if self.generic else "DeepInfra"
        return f"{kind} at {self.root}{how}"

    def adapt(self, request: ApiRequest) -> ApiRequest:
        """A chat or models request sent to this server's route; generic servers need no key."""
        if not self.generic:
            return request
        path = {CHAT_PATH: GENERIC_CHAT, MODELS_PATH: GENERIC_MODELS, CATALOG_PATH: GENERIC_MODELS}
        return dataclasses.replace(
            request, path=path.get(request.path, request.path), needs_key=False
        )

    def image_request(
        self, prompt: str, model: str, extra: Mapping[str, Any], *, cog: bool = False
    ) -> ApiRequest:
        """DeepInfra's native inference call (``cog``: fields under ``input``), or the
        OpenAI images call with only what the request needs: no ``n`` or ``response_format``
        (both have the default we want, or none: an answer of URLs is downloaded, and a
        LiteLLM proxy refuses ``response_format``)."""
        if not self.generic:
            return image_request(prompt, model, extra, cog=cog)
        check_image_request(prompt, model)
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        fields = dict(extra)
        width, height = fields.pop("width", None), fields.pop("height", None)
        if width or height:
            body["size"] = f"{width or height}x{height or width}"
        body.update(fields)
        return ApiRequest(
            "POST", GENERIC_IMAGES, json=body, needs_key=False, model=model, kind="billable"
        )

    def parse_catalog(self, payload: Any) -> list[dict[str, Any]] | None:
        """Catalog entries from a generic ``{"data": [{"id": ...}]}`` list (None on DeepInfra,
        whose featured list has its own parser). Their kind is unknown: all count as chat."""
        if not self.generic:
            return None
        items = payload.get("data") if isinstance(payload, Mapping) else payload
        if not isinstance(items, list):
            raise InvalidResponseError(
                f"The model list at {self.url(GENERIC_MODELS)} was not "
                '{"data": [{"id": ...}]}; any model name still works with -m.'
            )
        entries = []
        for item in items:
            name = item.get("id") if isinstance(item, Mapping) else None
            if not name:
                continue
            entry: dict[str, Any] = {"model_name": str(name), "type": "text-generation"}
            context = _context_length(item)
            if context:
                entry["max_tokens"] = context
            entries.append(entry)
        return entries


def _context_length(item: Mapping[str, Any]) -> int | None:
    """The context a generic model list states: a top-level field, or llama.cpp's
    llama-server ``meta.n_ctx`` (the context of one slot, what one request may use)."""
    meta = item.get("meta")
    found = [item.get(name) for name in _CONTEXT_FIELDS]
    found.append(meta.get("n_ctx") if isinstance(meta, Mapping) else None)
    return next((v for v in found if type(v) is int and v > 0), None)


def fit_max_tokens(
    max_tokens: int | None, context_length: int | None, messages: Sequence[Mapping[str, Any]]
) -> int | None:
    """``max_tokens`` lowered so that prompt plus reply fit the context, when it is known.

    The prompt is estimated at four characters per token plus a few per message, the usual
    rule for English; a prompt that already fills the context is left for the server to
    refuse (a clear context-length error), rather than asking for no tokens at all.
    """
    if max_tokens is None or not context_length:
        return max_tokens
    prompt = sum(len(str(m.get("content") or "")) // 4 + 4 for m in messages)
    room = context_length - prompt
    return min(max_tokens, room) if room >= 1 else min(max_tokens, context_length)
