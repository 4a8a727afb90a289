"""A gpt4free-compatible ``DeepInfra`` provider on top of this package's client.

It keeps the attributes and the four classmethods of g4f's DeepInfra provider, and its
behaviour that an image model passed to the chat call produces an image. It sends an
honest User-Agent and requires a key (or a replay recording); there is no keyless path.
The API root comes from ``DEEPINFRA_BASE_URL`` (or ``api_base=``), the key from
``DEEPINFRA_API_KEY`` (or ``api_key=``).

Examples (each works as written against a server at ``DEEPINFRA_BASE_URL``)::

    >>> from deepinfra_magic.provider import DeepInfra
    >>> DeepInfra.default_model in DeepInfra.get_models()
    True
    >>> DeepInfra.default_image_model in DeepInfra.get_image_models()
    True

    >>> import asyncio
    >>> async def chat() -> str:
    ...     messages = [{"role": "user", "content": "Say hello"}]
    ...     chunks = []
    ...     async for chunk in DeepInfra.create_async_generator(
    ...         DeepInfra.default_model, messages, stream=True
    ...     ):
    ...         chunks.append(chunk)
    ...     return "".join(chunks)
    >>> len(asyncio.run(chat())) > 0
    True

    >>> image = asyncio.run(
    ...     DeepInfra.create_async_image("a red fox", DeepInfra.default_image_model)
    ... )
    >>> image.images[0].mime_type
    'image/png'
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from ._config import DEFAULT_IMAGE_MODEL, DEFAULT_MODEL, resolve_base_url
from .images import ImageResult
from .types import ContentDelta

__all__ = ["DeepInfra"]

_INFERENCE_SUFFIX = "/v1/inference"


def _root(api_base: str | None) -> str | None:
    """Accept g4f-style bases (``…/v1/openai``, ``…/v1/inference``) as well as the root."""
    if not api_base:
        return None
    base = api_base.rstrip("/")
    if base.endswith(_INFERENCE_SUFFIX):
        base = base[: -len(_INFERENCE_SUFFIX)]
    return resolve_base_url(base)


class DeepInfra:
    """DeepInfra for g4f-style callers: catalog, streamed chat, and text-to-image."""

    label: ClassVar[str] = "DeepInfra"
    url: ClassVar[str] = "https://deepinfra.com"
    login_url: ClassVar[str] = "https://deepinfra.com/dash/api_keys"
    api_base: ClassVar[str] = "https://api.deepinfra.com/v1/openai"
    working: ClassVar[bool] = True
    needs_auth: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = True
    supports_message_history: ClassVar[bool] = True
    default_model: ClassVar[str] = DEFAULT_MODEL
    default_image_model: ClassVar[str] = DEFAULT_IMAGE_MODEL
    models: ClassVar[list[str]] = []
    image_models: ClassVar[list[str]] = []

    @classmethod
    def get_models(cls, **kwargs: Any) -> list[str]:
        """Featured text models, then image models (both usable with the chat call).

        Fetched once per process from ``/models/featured``; later calls reuse it.
        """
        if not cls.models:
            from .client import DeepInfraClient

            with DeepInfraClient(
                base_url=_root(kwargs.get("api_base")), flavour="deepinfra"
            ) as client:
                catalog = client.models()
            cls.image_models = [model.name for model in catalog.image_models]
            cls.models = [model.name for model in catalog.text_models] + cls.image_models
        return cls.models

    @classmethod
    def get_image_models(cls, **kwargs: Any) -> list[str]:
        """Featured text-to-image models."""
        if not cls.image_models:
            cls.get_models(**kwargs)
        return cls.image_models

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        stream: bool = True,
        prompt: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1028,
        **kwargs: Any,
    ) -> AsyncIterator[str | ImageResult]:
        """Yield the reply's text chunks; for an image model, yield one image result
        made from ``prompt`` (or the last message)."""
        model = model or cls.default_model
        if model in cls.get_image_models(**kwargs):
            text = prompt if prompt is not None else str(messages[-1]["content"])
            yield await cls.create_async_image(text, model, **kwargs)
            return
        from .client import AsyncDeepInfraClient

        api_key = kwargs.pop("api_key", None)
        api_base = _root(kwargs.pop("api_base", None))
        timeout = kwargs.pop("timeout", None)
        proxy = kwargs.pop("proxy", None)
        async with AsyncDeepInfraClient(
            api_key, base_url=api_base, timeout=timeout, proxy=proxy, flavour="deepinfra"
        ) as client:
            if not stream:
                result = await client.chat(
                    messages, model, stream=False, temperature=temperature,
                    max_tokens=max_tokens, **kwargs,
                )  # fmt: skip
                yield result.text
                return
            reply = await client.chat(
                messages, model, temperature=temperature, max_tokens=max_tokens, **kwargs
            )
            async with reply:
                async for event in reply:
                    if isinstance(event, ContentDelta):
                        yield event.text

    @classmethod
    async def create_async_image(
        cls,
        prompt: str,
        model: str,
        api_key: str | None = None,
        api_base: str | None = None,
        proxy: str | None = None,
        timeout: int = 180,
        extra_data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ImageResult:
        """Text to image: ``{"prompt": prompt, **extra_data}`` to ``/v1/inference/{model}``."""
        from .client import AsyncDeepInfraClient

        del kwargs  # g4f passes provider-wide options this call does not use
        async with AsyncDeepInfraClient(
            api_key, base_url=_root(api_base), timeout=timeout, proxy=proxy, flavour="deepinfra"
        ) as client:
            return await client.generate_image(
                prompt, model or cls.default_image_model, **dict(extra_data or {})
            )
