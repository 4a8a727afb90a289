"""The model catalog: DeepInfra's featured models, cached once per process and on disk.

One catalog per API root (or recording) for the whole process, fetched by at most one
request however many threads ask. A disk copy (with a TTL) lets a restarted kernel start
without waiting, and stands in, visibly, when the network fails. The list only helps:
a model that is not featured can still be used. A list the server refused is asked for
once per API root *and key*: a new key (a login, a changed environment) is a new try.
Keys are told apart by :func:`key_fingerprint`, a digest under a secret made fresh in
each process; the key itself is never kept here.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import hashlib
import hmac
import json
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._config import DEFAULT_CATALOG_TTL, Secret
from .errors import DeepInfraError
from .types import Usage

__all__ = [
    "CATALOG_CACHE",
    "CatalogCache",
    "DiskCache",
    "Fetched",
    "ModelCatalog",
    "ModelInfo",
    "default_cache_dir",
    "key_fingerprint",
    "looks_like_vision_model",
]

TEXT_TYPE = "text-generation"
IMAGE_TYPE = "text-to-image"
# Which chat models can see images. DeepInfra's catalog entries carry ``tags`` (OpenAPI
# ``ModelOut.tags``); a model is a vision model when a tag says so. Names that say so count
# too, for entries without such tags and for models used by name that are not featured.
VISION_TAGS = frozenset({"vision", "multimodal", "image-text-to-text", "vlm"})
VISION_NAME_PATTERNS = (
    "*vision*",  # meta-llama/Llama-3.2-11B-Vision-Instruct, ...
    "*-vl-*",  # Qwen/Qwen2.5-VL-32B-Instruct, Qwen/Qwen3-VL-...
    "*-vl",
    "*llava*",
    "*pixtral*",
    "*llama-4-*",  # Llama 4 Scout and Maverick take images natively
    "*minicpm-v*",
    "*internvl*",
    "*paligemma*",
    "*ocr*",  # allenai/olmOCR, deepseek-ai/DeepSeek-OCR, ...
)


def looks_like_vision_model(name: str) -> bool:
    """True when a model's name matches one of ``VISION_NAME_PATTERNS``."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in VISION_NAME_PATTERNS)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ModelInfo:
    """One catalog entry, with the metadata worth showing (the raw entry is kept too)."""

    name: str
    kind: str  # "text", "image" or "other"
    description: str = ""
    context_length: int | None = None
    pricing: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    deprecated: float | None = None  # when DeepInfra deprecated it (epoch seconds)
    replaced_by: str | None = None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ModelInfo:
        """Classify a ``/models/featured`` entry the way DeepInfra's own tools do."""
        if entry.get("type") == TEXT_TYPE:
            kind = "text"
        elif entry.get("reported_type") == IMAGE_TYPE or entry.get("type") == IMAGE_TYPE:
            kind = "image"
        else:
            kind = "other"
        context = _number(entry.get("max_tokens") or entry.get("context_length"))
        pricing = entry.get("pricing")
        return cls(
            name=str(entry["model_name"]),
            kind=kind,
            description=str(entry.get("description") or ""),
            context_length=int(context) if context else None,
            pricing=dict(pricing) if isinstance(pricing, Mapping) else {},
            raw=dict(entry),
            deprecated=_number(entry.get("deprecated")),
            replaced_by=str(entry["replaced_by"]) if entry.get("replaced_by") else None,
        )

    def deprecation_note(self) -> str:
        """One line saying the model is deprecated and what replaces it ('' if it is not)."""
        if self.deprecated is None:
            return ""
        since = time.strftime("%Y-%m-%d", time.gmtime(self.deprecated))
        instead = f"; use {self.replaced_by} instead" if self.replaced_by else ""
        return f"{self.name} is deprecated on DeepInfra (since {since}){instead}."

    @property
    def input_price(self) -> float | None:
        """Dollars per million input tokens, when the catalog says."""
        cents = _number(self.pricing.get("cents_per_input_token"))
        return cents * 1e6 / 100 if cents is not None else None

    @property
    def output_price(self) -> float | None:
        """Dollars per million output tokens, when the catalog says."""
        cents = _number(self.pricing.get("cents_per_output_token"))
        return cents * 1e6 / 100 if cents is not None else None

    @property
    def image_price(self) -> float | None:
        """Dollars for one image at the default size and steps, when the catalog says:
        ``default_price_cents`` when given (flat-priced models such as sd3.5), else one
        image unit (which DeepInfra normalises to the default width × height × steps)."""
        cents = _number(self.pricing.get("default_price_cents"))
        if cents is None:
            cents = _number(self.pricing.get("cents_per_image_unit"))
        return cents / 100 if cents is not None else None

    def price_text(self) -> str:
        """Short price for a table: ``$0.23 / $0.40 per 1M tok`` or ``$0.005 / image``."""
        if self.input_price is not None or self.output_price is not None:
            parts = [
                f"${p:.2f}" if p is not None else "?" for p in (self.input_price, self.output_price)
            ]
            return f"{parts[0]} in / {parts[1]} out per 1M tok"
        if self.image_price is not None:
            return f"${self.image_price:.4g} / image"
        return ""

    @property
    def tags(self) -> tuple[str, ...]:
        """The catalog's tags for this model (``ModelOut.tags``)."""
        tags = self.raw.get("tags")
        return tuple(str(t) for t in tags) if isinstance(tags, (list, tuple)) else ()

    @property
    def vision(self) -> bool:
        """True for a chat model that accepts images: tagged so, or named so."""
        if self.kind != "text":
            return False
        return bool(VISION_TAGS & {t.lower() for t in self.tags}) or looks_like_vision_model(
            self.name
        )

    def cost(self, usage: Usage) -> float | None:
        """Dollars for a request's usage, from the catalog's token prices."""
        if self.input_price is None and self.output_price is None:
            return None
        return (
            usage.prompt_tokens * (self.input_price or 0.0)
            + usage.completion_tokens * (self.output_price or 0.0)
        ) / 1e6


@dataclass
class ModelCatalog:
    """The featured models, where they came from, and lookups that help with names."""

    models: list[ModelInfo]
    source: str  # "network", "disk cache", "stale cache" or "recording"
    fetched_at: float  # Unix time; a recording's list: when it was recorded (0 if unknown)
    warning: str | None = None

    @classmethod
    def from_entries(
        cls, entries: Iterable[Mapping[str, Any]], source: str, fetched_at: float | None = None
    ) -> ModelCatalog:
        """Build from raw ``/models/featured`` entries."""
        models = [ModelInfo.from_entry(entry) for entry in entries if entry.get("model_name")]
        return cls(models, source, fetched_at if fetched_at is not None else time.time())

    @property
    def text_models(self) -> list[ModelInfo]:
        """Chat models (``type == "text-generation"``)."""
        return [m for m in self.models if m.kind == "text"]

    @property
    def image_models(self) -> list[ModelInfo]:
        """Text-to-image models (``reported_type == "text-to-image"``)."""
        return [m for m in self.models if m.kind == "image"]

    @property
    def vision_models(self) -> list[ModelInfo]:
        """Chat models that accept images (see ``ModelInfo.vision``)."""
        return [m for m in self.text_models if m.vision]

    def can_see(self, name: str) -> bool | None:
        """Whether ``name`` accepts images: from the catalog, else from its name. None when
        it cannot be told: a model that is not listed, or a list without tags (another
        OpenAI-compatible server), and no telling name."""
        model = self.get(name)
        if model is not None and (model.vision or isinstance(model.raw.get("tags"), list)):
            return model.vision
        return True if looks_like_vision_model(name) else None

    def get(self, name: str) -> ModelInfo | None:
        """The entry for a model name (exact, then case-insensitive), or None."""
        for model in self.models:
            if model.name == name:
                return model
        lowered = name.lower()
        return next((m for m in self.models if m.name.lower() == lowered), None)

    def is_image_model(self, name: str) -> bool:
        """True when the catalog lists ``name`` as a text-to-image model."""
        model = self.get(name)
        return model is not None and model.kind == "image"

    def is_text_model(self, name: str) -> bool:
        """True when the catalog lists ``name`` as a chat model."""
        model = self.get(name)
        return model is not None and model.kind == "text"

    def close_matches(self, name: str, *, kind: str | None = None, limit: int = 3) -> list[str]:
        """Names that look like ``name``: shared words first, then spelling similarity."""
        kinds = (kind,) if kind else ("text", "image")
        pool = [m.name for m in self.models if m.kind in kinds]
        lowered = name.lower().split("/")[-1]
        by_part = [candidate for candidate in pool if lowered and lowered in candidate.lower()]
        by_spelling = difflib.get_close_matches(name, pool, n=limit, cutoff=0.4)
        short = {c.split("/")[-1].lower(): c for c in pool}
        by_short = [
            short[m] for m in difflib.get_close_matches(lowered, list(short), n=limit, cutoff=0.5)
        ]
        matches: list[str] = []
        for candidate in by_part + by_spelling + by_short:
            if candidate not in matches and candidate != name:
                matches.append(candidate)
        return matches[:limit]

    def filter(self, pattern: str | None = None, kind: str | None = None) -> list[ModelInfo]:
        """Models of a kind whose name matches a glob (``*flux*``) or contains a substring."""
        selected = [m for m in self.models if m.kind in ("text", "image")]
        if kind == "vision":
            selected = [m for m in selected if m.vision]
        elif kind:
            selected = [m for m in selected if m.kind == kind]
        if pattern:
            needle = pattern.lower()
            is_glob = any(ch in needle for ch in "*?[")
            selected = [
                m
                for m in selected
                if (
                    fnmatch.fnmatchcase(m.name.lower(), needle)
                    if is_glob
                    else needle in m.name.lower()
                )
            ]
        return selected


class DiskCache:
    """The catalog on disk, one JSON file per API root, fresh for ``ttl`` seconds."""

    def __init__(self, directory: Path | None = None, ttl: float = DEFAULT_CATALOG_TTL) -> None:
        self.directory = directory if directory is not None else default_cache_dir()
        self.ttl = ttl

    def _file(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.directory / f"catalog-{digest}.json"

    def load(self, key: str) -> tuple[list[dict[str, Any]], float] | None:
        """Stored entries and their fetch time (epoch seconds), or None."""
        try:
            data = json.loads(self._file(key).read_text(encoding="utf-8"))
            if data.get("key") != key:
                return None
            return list(data["models"]), float(data["fetched_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, entries: list[dict[str, Any]], fetched_at: float) -> None:
        """Store atomically; a cache that cannot be written is simply skipped."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"key": key, "fetched_at": fetched_at, "models": entries})
            handle, temp = tempfile.mkstemp(prefix=".catalog-", dir=self.directory)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temp, self._file(key))
        except OSError:
            return

    def fresh(self, fetched_at: float) -> bool:
        """True while a copy fetched at ``fetched_at`` is within the TTL."""
        return time.time() - fetched_at < self.ttl


def default_cache_dir() -> Path:
    """The user cache dir (``$XDG_CACHE_HOME/deepinfra-magic`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("deepinfra-magic", appauthor=False))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


# Fresh in each process, so a fingerprint cannot be matched against keys elsewhere.
_FINGERPRINT_SECRET = os.urandom(32)


def key_fingerprint(key: Secret | None) -> str:
    """Tells keys apart without holding one: 16 hex digits of an HMAC of the key under a
    per-process secret ('' for no key). Only for comparing keys within this process."""
    if not key:
        return ""
    digest = hmac.new(_FINGERPRINT_SECRET, key.reveal().encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


# Entries, whether they were replayed, and when they were recorded (if replayed and known).
Fetched = tuple[list[dict[str, Any]], bool, float | None]


class CatalogCache:
    """Process-wide catalogs by key, each fetched once, whatever the number of callers.

    A refusal (a 4xx: a key refused, no such route) is remembered per key and
    ``credential`` (a :func:`key_fingerprint`): asked again only with another key.
    """

    def __init__(self) -> None:
        self._catalogs: dict[str, ModelCatalog] = {}
        self._refused: dict[tuple[str, str], DeepInfraError] = {}  # (key, credential) →
        self._locks: dict[str, threading.Lock] = {}
        # asyncio locks belong to one event loop: one per key in each running loop.
        self._alocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]
        self._alocks = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _alock(self, key: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._alocks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def peek(self, key: str) -> ModelCatalog | None:
        """The catalog already in memory for ``key``, without any I/O."""
        return self._catalogs.get(key)

    def refusal(self, key: str, credential: str = "") -> DeepInfraError | None:
        """The error the server answered when ``credential``'s key asked for ``key``'s
        list, if it refused it (None when it did not, or was not asked)."""
        return self._refused.get((key, credential))

    def get(
        self,
        key: str,
        fetch: Callable[[], Fetched],
        *,
        refresh: bool = False,
        disk: DiskCache | None = None,
        credential: str = "",
    ) -> ModelCatalog:
        """The catalog for ``key``: memory, then a fresh disk copy, then the network (a
        refusal for the same ``credential`` is raised again without asking)."""
        with self._lock(key):
            ready, stored = self._before_fetch(key, credential, refresh, disk)
            if ready is not None:
                return ready
            try:
                fetched = fetch()
            except DeepInfraError as exc:
                return self._fallback(key, credential, stored, exc)
            return self._store(key, credential, fetched, disk)

    async def aget(
        self,
        key: str,
        fetch: Callable[[], Awaitable[Fetched]],
        *,
        refresh: bool = False,
        disk: DiskCache | None = None,
        credential: str = "",
    ) -> ModelCatalog:
        """:meth:`get` for async callers: one fetch per key across every client of a loop."""
        async with self._alock(key):
            ready, stored = self._before_fetch(key, credential, refresh, disk)
            if ready is not None:
                return ready
            try:
                fetched = await fetch()
            except DeepInfraError as exc:
                return self._fallback(key, credential, stored, exc)
            return self._store(key, credential, fetched, disk)

    def _before_fetch(
        self, key: str, credential: str, refresh: bool, disk: DiskCache | None
    ) -> tuple[ModelCatalog | None, tuple[list[dict[str, Any]], float] | None]:
        if not refresh and key in self._catalogs:
            return self._catalogs[key], None
        refused = self._refused.get((key, credential))
        if not refresh and refused is not None:
            raise refused.with_traceback(None)  # not the traceback of every earlier raise
        stored = disk.load(key) if disk is not None else None
        if stored is not None and not refresh and disk is not None and disk.fresh(stored[1]):
            catalog = ModelCatalog.from_entries(stored[0], "disk cache", stored[1])
            self._catalogs[key] = catalog
            return catalog, stored
        return None, stored

    def _store(
        self, key: str, credential: str, fetched: Fetched, disk: DiskCache | None
    ) -> ModelCatalog:
        entries, replayed, recorded_at = fetched
        now = time.time()
        if disk is not None and not replayed:
            disk.save(key, entries, now)
        # A replayed list is as old as its recording (0: the recording does not say when).
        when = (recorded_at or 0.0) if replayed else now
        catalog = ModelCatalog.from_entries(entries, "recording" if replayed else "network", when)
        self._catalogs[key] = catalog
        self._refused.pop((key, credential), None)
        return catalog

    def _fallback(
        self,
        key: str,
        credential: str,
        stored: tuple[list[dict[str, Any]], float] | None,
        error: DeepInfraError,
    ) -> ModelCatalog:
        if stored is None:
            if error.status_code is not None and 400 <= error.status_code < 500:
                self._refused[(key, credential)] = error
            raise error
        catalog = ModelCatalog.from_entries(stored[0], "stale cache", stored[1])
        catalog.warning = (
            f"Could not refresh the model list ({error.message}); using the copy cached "
            f"{_age(time.time() - stored[1])} ago."
        )
        self._catalogs[key] = catalog
        return catalog

    def clear(self, key: str | None = None) -> None:
        """Forget one catalog (or all) and its refusals, so the next request fetches again."""
        with self._guard:
            if key is None:
                self._catalogs.clear()
                self._refused.clear()
            else:
                self._catalogs.pop(key, None)
                for refused in [pair for pair in self._refused if pair[0] == key]:
                    del self._refused[refused]


CATALOG_CACHE = CatalogCache()
