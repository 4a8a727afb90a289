"""A gpt4free (g4f) ``DeepInfra`` provider on top of this package's clients.

It works through g4f's own ``Client`` and ``AsyncClient`` (streamed and plain chat,
``client.images.generate``, an image model used through chat, reasoning) and can also be
called directly, g4f-style. When g4f is importable it yields g4f's own response types
(``Reasoning``, ``ImageResponse``, ``Usage``, ``FinishReason``); without g4f it yields
text, :class:`~deepinfra_magic.types.ReasoningDelta` and
:class:`~deepinfra_magic.images.ImageResult`.

It sends an honest User-Agent and requires a key (or a replay recording); there is no
keyless path. The API root comes from ``base_url=`` (g4f's name; ``api_base=`` is still
accepted), else ``DEEPINFRA_BASE_URL``; the key from ``api_key=``, else
``DEEPINFRA_API_KEY``. Only known OpenAI parameters reach the request body: g4f's own
keywords (``provider``, ``media``, ``conversation``, …) never do. One client is kept per
(base URL, key, proxy, timeout), so calls after the first pay no setup.

Examples (each works as written against a server at ``DEEPINFRA_BASE_URL``)::

    >>> from deepinfra_magic.provider import DeepInfra
    >>> DeepInfra.default_model in DeepInfra.get_models()
    True

    >>> from g4f.client import Client                      # doctest: +SKIP
    >>> Client(provider=DeepInfra).chat.completions.create(  # doctest: +SKIP
    ...     messages=[{"role": "user", "content": "Say hello"}], model=DeepInfra.default_model
    ... ).choices[0].message.content
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._config import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_MODEL,
    Secret,
    Timeouts,
    resolve_api_url,
    resolve_key,
)
from ._routes import Routes
from .images import ImageResult
from .types import ChatResult, ContentDelta, ReasoningDelta, Usage

if TYPE_CHECKING:
    from .client import AsyncDeepInfraClient, DeepInfraClient, _ClientBase

__all__ = ["DeepInfra"]

C = TypeVar("C", bound="_ClientBase")

_INFERENCE_SUFFIX = "/v1/inference"

FORWARDED_PARAMETERS = frozenset(
    {
        "top_p",
        "top_k",
        "min_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "response_format",
        "logit_bias",
        "reasoning_effort",
        "user",
    }
)
"""The request parameters passed on to DeepInfra; every other keyword is g4f's own."""
IMAGE_PARAMETERS = frozenset(
    {"width", "height", "seed", "num_inference_steps", "guidance_scale", "negative_prompt"}
)
"""Keywords passed on to an image request (``extra_data`` adds any others)."""


def _root(base_url: str | None) -> str:
    """Accept g4f-style bases (``…/v1/openai``, ``…/v1/inference``) as well as the root."""
    base = (base_url or "").rstrip("/")
    if base.endswith(_INFERENCE_SUFFIX):
        base = base[: -len(_INFERENCE_SUFFIX)]
    return Routes.for_url(resolve_api_url(base or None), "deepinfra").root


Settings = tuple[str, Secret | None, str | None, float | None]


def _settings(kwargs: Mapping[str, Any]) -> Settings:
    """(base URL, key, proxy, timeout) from g4f's keywords (``api_base`` is the old name);
    the key falls back to the environment, as the clients' does."""
    base_url = kwargs.get("base_url") or kwargs.get("api_base")
    api_key = kwargs.get("api_key")
    timeout = kwargs.get("timeout")
    return (
        _root(base_url if isinstance(base_url, str) else None),
        resolve_key(api_key if isinstance(api_key, str) and api_key.strip() else None),
        kwargs.get("proxy") or None,
        float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None,
    )


def _cache_key(settings: Settings) -> tuple[Any, ...]:
    """The settings with the key replaced by its digest, so no cache holds the key itself."""
    base_url, api_key, proxy, timeout = settings
    digest = hashlib.sha256(api_key.reveal().encode()).hexdigest() if api_key else None
    return base_url, digest, proxy, timeout


_lock = threading.Lock()
_sync_clients: dict[tuple[Any, ...], DeepInfraClient] = {}
# An httpx AsyncClient belongs to the event loop that opened its connections, so async
# clients are kept per loop (and forgotten with it).
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[Any, ...], AsyncDeepInfraClient]
] = weakref.WeakKeyDictionary()


def _timeouts(timeout: float | None) -> Timeouts | None:
    return Timeouts(read=timeout) if timeout else None


def _client_of(cls: type[C], settings: Settings) -> C:
    base_url, api_key, proxy, timeout = settings
    # flavour: this provider is DeepInfra's, whatever the URL
    return cls(
        api_key, base_url=base_url, proxy=proxy, timeout=_timeouts(timeout), flavour="deepinfra"
    )


def sync_client(**kwargs: Any) -> DeepInfraClient:
    """The process's blocking client for these settings (made once, then reused)."""
    from .client import DeepInfraClient

    settings = _settings(kwargs)
    key = _cache_key(settings)
    with _lock:
        client = _sync_clients.get(key)
        if client is None:
            client = _sync_clients[key] = _client_of(DeepInfraClient, settings)
    return client


def async_client(**kwargs: Any) -> AsyncDeepInfraClient:
    """This event loop's async client for these settings (made once, then reused)."""
    from .client import AsyncDeepInfraClient

    settings = _settings(kwargs)
    key = _cache_key(settings)
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(key)
    if client is None:
        client = clients[key] = _client_of(AsyncDeepInfraClient, settings)
    return client


def _chat_options(
    temperature: float | None, max_tokens: int | None, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Sampling settings and the known OpenAI parameters; g4f's own keywords stay out."""
    options = {name: value for name, value in kwargs.items() if name in FORWARDED_PARAMETERS}
    return {"temperature": temperature, "max_tokens": max_tokens, **options}


def _image_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    options = {name: value for name, value in kwargs.items() if name in IMAGE_PARAMETERS}
    extra = kwargs.get("extra_data")
    return {**options, **(dict(extra) if isinstance(extra, Mapping) else {})}


def _prompt(messages: Sequence[Mapping[str, Any]], prompt: str | None) -> str:
    """What an image model draws: g4f's ``prompt=``, else the last message's text."""
    if prompt:
        return prompt
    content = messages[-1].get("content") if messages else ""
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


# --- g4f's response types, when g4f is importable ------------------------------------------


def _g4f_types() -> Any:
    """g4f's response module, or None without g4f (imported on first use only)."""
    try:
        from g4f.providers import response
    except ImportError:
        return None
    return response


def _image_item(result: ImageResult, types: Any) -> Any:
    """The images as g4f's ``ImageResponse`` (data URIs), or our ImageResult without g4f."""
    if types is None:
        return result
    uris = [
        f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode()}"
        for image in result.images
    ]
    return types.ImageResponse(uris, result.prompt)


def _reasoning_item(text: str, types: Any) -> Any:
    return ReasoningDelta(text) if types is None else types.Reasoning(text)


def _other_items(event: Any, types: Any) -> Iterator[Any]:
    """What g4f receives for an event other than answer text: reasoning, or the closing
    usage and finish reason."""
    if isinstance(event, ReasoningDelta):
        yield _reasoning_item(event.text, types)
    else:
        yield from _closing_items(event, types)


def _closing_items(result: ChatResult, types: Any) -> list[Any]:
    """Usage and finish reason in g4f's types (nothing without g4f)."""
    if types is None:
        return []
    items: list[Any] = []
    usage: Usage | None = result.usage
    if usage is not None:
        items.append(types.Usage(**usage.as_dict()))
    if result.finish_reason:
        items.append(types.FinishReason(result.finish_reason))
    return items


class DeepInfra:
    """DeepInfra for g4f: catalog, streamed chat with reasoning, and text-to-image."""

    label: ClassVar[str] = "DeepInfra"
    url: ClassVar[str] = "https://deepinfra.com"
    login_url: ClassVar[str] = "https://deepinfra.com/dash/api_keys"
    api_base: ClassVar[str] = "https://api.deepinfra.com/v1/openai"
    working: ClassVar[bool] = True
    active_by_default: ClassVar[bool] = True
    needs_auth: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = True
    supports_message_history: ClassVar[bool] = True
    supports_system_message: ClassVar[bool] = True
    use_stream_timeout: ClassVar[bool] = False
    live: ClassVar[int] = 0  # g4f counts working calls here
    default_model: ClassVar[str] = DEFAULT_MODEL
    default_image_model: ClassVar[str] = DEFAULT_IMAGE_MODEL
    models: ClassVar[list[str]] = []
    image_models: ClassVar[list[str]] = []

    # --- what g4f asks of every provider --------------------------------------------------

    @classmethod
    def get_dict(cls) -> dict[str, str]:
        """Name, site and label, as g4f's client reports the provider."""
        return {"name": cls.__name__, "url": cls.url, "label": cls.label}

    @classmethod
    def get_parent(cls) -> str:
        """The name g4f files keys under (``DEEPINFRA_API_KEY``)."""
        return cls.__name__

    @classmethod
    def get_models(cls, **kwargs: Any) -> list[str]:
        """Featured text models, then image models (both usable with the chat call)."""
        catalog = sync_client(**kwargs).models()
        cls.image_models = [model.name for model in catalog.image_models]
        cls.models = [model.name for model in catalog.text_models] + cls.image_models
        return cls.models

    @classmethod
    def get_image_models(cls, **kwargs: Any) -> list[str]:
        """Featured text-to-image models."""
        cls.get_models(**kwargs)
        return cls.image_models

    # --- chat (and images through chat) -----------------------------------------------------

    @classmethod
    def create_completion(
        cls,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        stream: bool = True,
        prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """The blocking form g4f's ``Client`` uses: text chunks (and g4f's reasoning, usage
        and finish reason); for an image model, one image response."""
        model = model or cls.default_model
        client = sync_client(**kwargs)
        types = _g4f_types()
        if client.models().is_image_model(model):
            images = client.generate_image(
                _prompt(messages, prompt), model, **_image_options(kwargs)
            )
            yield _image_item(images, types)
            return
        options = _chat_options(temperature, max_tokens, kwargs)
        if not stream:
            yield from cls._whole(client.chat(messages, model, stream=False, **options), types)
            return
        with client.chat(messages, model, **options) as reply:
            for event in reply:
                if type(event) is ContentDelta:  # per token: the cheapest test first
                    yield event.text
                else:
                    yield from _other_items(event, types)

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        stream: bool = True,
        prompt: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """The async form g4f's ``AsyncClient`` and ``client.images`` use; the same items
        as :meth:`create_completion`."""
        model = model or cls.default_model
        client = async_client(**kwargs)
        types = _g4f_types()
        if (await client.models()).is_image_model(model):
            text = _prompt(messages, prompt)
            yield _image_item(
                await client.generate_image(text, model, **_image_options(kwargs)), types
            )
            return
        options = _chat_options(temperature, max_tokens, kwargs)
        if not stream:
            for item in cls._whole(
                await client.chat(messages, model, stream=False, **options), types
            ):
                yield item
            return
        reply = await client.chat(messages, model, **options)
        async with reply:
            async for event in reply:
                if type(event) is ContentDelta:  # per token: the cheapest test first
                    yield event.text
                else:
                    for item in _other_items(event, types):
                        yield item

    @staticmethod
    def _whole(result: ChatResult, types: Any) -> Iterator[Any]:
        """A non-streamed reply: its reasoning, its text, then usage and finish reason."""
        if result.reasoning:
            yield _reasoning_item(result.reasoning, types)
        yield result.text
        yield from _closing_items(result, types)

    # --- images -------------------------------------------------------------------------------

    @classmethod
    async def create_async_image(
        cls, prompt: str, model: str | None = None, **kwargs: Any
    ) -> ImageResult:
        """Text to image: ``{"prompt": prompt, **extra_data}`` to ``/v1/inference/{model}``
        (g4f's older DeepInfra interface); returns this package's ImageResult."""
        client = async_client(**kwargs)
        return await client.generate_image(
            prompt, model or cls.default_image_model, **_image_options(kwargs)
        )
