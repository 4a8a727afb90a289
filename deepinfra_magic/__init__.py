"""deepinfra-magic: DeepInfra's models in IPython and Jupyter, and a client library.

In a notebook::

    %load_ext deepinfra_magic

registers ``%%deepinfra`` (chat, streamed live), ``%deepinfra_image``, ``%deepinfra_models``,
``%deepinfra_login``, ``%deepinfra_reset``, ``%deepinfra_history``, ``%deepinfra_replay``,
``%deepinfra_record``, ``%%deepinfra_map`` (a prompt over a table), ``%deepinfra_batches``
and ``%deepinfra_usage``. Loading imports nothing heavy and makes no network call: the HTTP
client (httpx) loads on first use, so names like :class:`DeepInfraClient` are imported
lazily from this package too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    DeepInfraError,
    InsufficientCreditError,
    InvalidArgumentError,
    InvalidRequestError,
    InvalidResponseError,
    MissingAPIKeyError,
    ModelNotFoundError,
    RateLimitError,
    ReplayError,
    SchemaError,
    ServerError,
    StreamError,
)

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .catalog import ModelCatalog, ModelInfo
    from .client import AsyncChatStream, AsyncDeepInfraClient, ChatStream, DeepInfraClient
    from .conversation import Conversation
    from .images import GeneratedImage, ImageResult
    from .maps import BatchJob, MapInterrupted, MapResult, RowError
    from .recording import Recording
    from .types import ChatResult, ContentDelta, ReasoningDelta, Usage

# The errors are imported above (every mistake is one of them); these load on first use
# (the client brings httpx, and the result types come with it), so ``%load_ext`` stays fast.
_LAZY = {
    "ChatResult": "types",
    "ContentDelta": "types",
    "ReasoningDelta": "types",
    "Usage": "types",
    "DeepInfraClient": "client",
    "AsyncDeepInfraClient": "client",
    "ChatStream": "client",
    "AsyncChatStream": "client",
    "ModelCatalog": "catalog",
    "ModelInfo": "catalog",
    "Conversation": "conversation",
    "GeneratedImage": "images",
    "ImageResult": "images",
    "Recording": "recording",
    "MapResult": "maps",
    "MapInterrupted": "maps",
    "RowError": "maps",
    "BatchJob": "maps",
}

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncDeepInfraClient",
    "AuthenticationError",
    "BatchJob",
    "ChatResult",
    "ChatStream",
    "ConfigurationError",
    "ContentDelta",
    "Conversation",
    "DeepInfraClient",
    "DeepInfraError",
    "GeneratedImage",
    "ImageResult",
    "InsufficientCreditError",
    "InvalidArgumentError",
    "InvalidRequestError",
    "InvalidResponseError",
    "MapInterrupted",
    "MapResult",
    "MissingAPIKeyError",
    "ModelCatalog",
    "ModelInfo",
    "ModelNotFoundError",
    "RateLimitError",
    "ReasoningDelta",
    "Recording",
    "ReplayError",
    "RowError",
    "SchemaError",
    "ServerError",
    "StreamError",
    "Usage",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    """Import public names on first use, so ``%load_ext`` stays light."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'deepinfra_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register every magic of the extension (no network, no heavy import)."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove every magic of the extension and close its HTTP clients."""
    from .magics import unload

    unload(ipython)
