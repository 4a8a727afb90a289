"""The featured catalog: models, prices and their sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------
# Catalog


def token_pricing(cents_per_input_token: float, cents_per_output_token: float) -> dict[str, Any]:
    """Pricing block of a text model, in cents per token as DeepInfra reports it."""
    return {
        "type": "tokens",
        "cents_per_input_token": cents_per_input_token,
        "cents_per_output_token": cents_per_output_token,
    }


def image_pricing(
    cents_per_image_unit: float,
    size: int = 1024,
    iterations: int = 1,
    flat_cents: float | None = None,
) -> dict[str, Any]:
    """Pricing block of a text-to-image model (S7 ``ModelPricingImageUnits``): one image
    unit is one image at the default width × height × iterations (S3, S21);
    ``default_price_cents`` is the price of a default image, flat for models such as sd3.5
    ("$0.06 / img", S4)."""
    return {
        "type": "image_units",
        "cents_per_image_unit": cents_per_image_unit,
        "default_width": size,
        "default_height": size,
        "default_iterations": iterations,
        "default_price_cents": flat_cents,
        "usage_from_cost": False,
    }


@dataclass(frozen=True)
class CatalogModel:
    """One featured-catalog entry; ``to_json`` gives the wire shape of ``GET /models/featured``."""

    name: str
    type: str
    description: str
    max_tokens: int | None = None
    pricing: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    reported_type: str | None = None  # None: same as ``type``
    deprecated: int | None = None  # S7 ModelOut, S21: epoch seconds of the deprecation
    replaced_by: str | None = None  # S7 ModelOut, S21

    @property
    def is_text(self) -> bool:
        """Whether chat completions accept this model."""
        return self.type == "text-generation"

    @property
    def is_image(self) -> bool:
        """Whether ``/v1/inference`` treats this model as text-to-image."""
        return self.type == "text-to-image"

    @property
    def is_vision(self) -> bool:
        """Whether chat requests may carry images for this model."""
        return "vision" in self.tags

    @property
    def is_reasoning(self) -> bool:
        """Whether the model streams ``reasoning_content`` before its answer."""
        return "reasoning" in self.tags

    def to_json(self) -> dict[str, Any]:
        """The entry as DeepInfra serves it."""
        return {
            "model_name": self.name,
            "type": self.type,
            "reported_type": self.reported_type or self.type,
            "description": self.description,
            "max_tokens": self.max_tokens,
            "pricing": self.pricing,
            "tags": list(self.tags),
            "deprecated": self.deprecated,
            "replaced_by": self.replaced_by,
            "quantization": None,
            "cover_img_url": f"https://shared.deepinfra.com/models/{self.name}/cover_image.webp",
        }

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> CatalogModel:
        """Inverse of ``to_json``, so a catalog can be configured over HTTP."""
        return cls(
            name=entry["model_name"],
            type=entry["type"],
            description=entry.get("description", ""),
            max_tokens=entry.get("max_tokens"),
            pricing=entry.get("pricing"),
            tags=tuple(entry.get("tags", ())),
            reported_type=entry.get("reported_type"),
            deprecated=entry.get("deprecated"),
            replaced_by=entry.get("replaced_by"),
        )


TEXT_GENERATION = "text-generation"
TEXT_TO_IMAGE = "text-to-image"

DEFAULT_CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        TEXT_GENERATION,
        "Llama 3.3 70B, quantised for fast inference.",
        131072,
        token_pricing(2.3e-05, 4e-05),
        ("chat", "fast"),
    ),
    CatalogModel(
        "meta-llama/Meta-Llama-3.1-8B-Instruct",
        TEXT_GENERATION,
        "Small, cheap Llama 3.1 for simple tasks.",
        131072,
        token_pricing(3e-06, 5e-06),
        ("chat",),
    ),
    CatalogModel(
        "Qwen/Qwen2.5-72B-Instruct",
        TEXT_GENERATION,
        "Qwen 2.5 72B, strong at code and maths.",
        32768,
        token_pricing(1.2e-05, 3.9e-05),
        ("chat", "code"),
    ),
    CatalogModel(
        "mistralai/Mistral-Small-24B-Instruct-2501",
        TEXT_GENERATION,
        "Mistral Small 3, a 24B model with low latency.",
        32768,
        token_pricing(6e-06, 1.2e-05),
        ("chat",),
    ),
    CatalogModel(
        "deepseek-ai/DeepSeek-R1",
        TEXT_GENERATION,
        "DeepSeek R1 reasoning model: thinks before it answers.",
        163840,
        token_pricing(7.5e-05, 2.4e-04),
        ("chat", "reasoning"),
    ),
    # A vision model (docs.deepinfra.com/chat/vision names the Llama 3.2 Vision models):
    # chat requests with image parts are for models tagged "vision" only.
    CatalogModel(
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
        TEXT_GENERATION,
        "Llama 3.2 11B Vision: answers questions about images.",
        131072,
        token_pricing(4.9e-06, 4.9e-06),
        ("chat", "vision"),
    ),
    CatalogModel(
        "google/gemma-3-27b-it",
        TEXT_GENERATION,
        "Gemma 3 27B; no published context length or pricing.",
    ),
    # S21: a real deprecated entry, and the model that replaces it.
    CatalogModel(
        "Austism/chronos-hermes-13b-v2",
        TEXT_GENERATION,
        "Chronos Hermes 13B v2 (deprecated).",
        4096,
        token_pricing(1.3e-05, 1.3e-05),
        ("chat",),
        deprecated=1727971605,
        replaced_by="Gryphe/MythoMax-L2-13b",
    ),
    CatalogModel(
        "Gryphe/MythoMax-L2-13b",
        TEXT_GENERATION,
        "MythoMax L2 13B.",
        4096,
        token_pricing(7.2e-06, 7.2e-06),
        ("chat",),
    ),
    # S3: "$0.0005 x (width/1024) x (height/1024) x iters".
    CatalogModel(
        "black-forest-labs/FLUX-1-schnell",
        TEXT_TO_IMAGE,
        "FLUX.1 [schnell]: images in a few steps.",
        None,
        image_pricing(0.05),
        ("image",),
    ),
    CatalogModel(
        "black-forest-labs/FLUX-1-dev",
        TEXT_TO_IMAGE,
        "FLUX.1 [dev]: higher quality, slower.",
        None,
        image_pricing(0.036, iterations=25),
        ("image",),
    ),
    # S4: sd3.5 takes aspect_ratio (no width/height) and costs a flat "$0.06 / img".
    CatalogModel(
        "stabilityai/sd3.5",
        TEXT_TO_IMAGE,
        "Stable Diffusion 3.5 Large.",
        None,
        image_pricing(6.0, flat_cents=6.0),
        ("image",),
    ),
    # S9: a Cog-packaged model: request {"input": {...}}, answer {"status", "output": [...]}.
    CatalogModel(
        "stability-ai/sdxl",
        TEXT_TO_IMAGE,
        "SDXL, packaged with Cog.",
        None,
        image_pricing(0.25),
        ("image",),
    ),
    CatalogModel(
        "BAAI/bge-large-en-v1.5",
        "embeddings",
        "Text embeddings; clients must not offer it for chat.",
        512,
        {"type": "input_tokens", "cents_per_input_token": 1e-06},
    ),
    CatalogModel(
        "openai/whisper-large-v3",
        "automatic-speech-recognition",
        "Speech to text; clients must not offer it for chat.",
        None,
        {"type": "input_length", "cents_per_sec": 0.0045},
    ),
)


ASPECT_RATIO_MODELS = frozenset({"stabilityai/sd3.5"})
"""Models that size images by ``aspect_ratio`` and ignore width/height (S4)."""
COG_MODELS = frozenset({"stability-ai/sdxl"})
"""Models that want ``{"input": {...}}`` and answer in Cog's shape (S9)."""
_ASPECT_RATIOS = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16), "4:3": (4, 3), "3:4": (3, 4)}
