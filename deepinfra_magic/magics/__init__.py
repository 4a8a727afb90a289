"""The IPython face of the package, one module per magic family, as IPython's own
``core/magics/``: ``chat`` (``%%deepinfra``, ``%deepinfra_explain``), ``images``
(``%deepinfra_image``), ``maps`` (``%%deepinfra_map``, ``%deepinfra_batches``,
``%deepinfra_usage``), ``models`` (``%deepinfra_models``, ``%deepinfra_login``),
``classroom`` (``%deepinfra_classroom``) and ``history`` (``%deepinfra_reset``,
``%deepinfra_history``, ``%deepinfra_replay``, ``%deepinfra_record``), on the shared
``settings``, ``session``, ``watch``, ``arguments`` and ``base``.

Rules kept here:

* A family's parser, magic and cell logic live in its one file; each parser is declared
  right above its magic and read through the method (``parse_argstring(self.deepinfra,
  line)``). There is no table of parsers.
* **One class, put together from the families.** Each family is a class of its own
  (``ChatMagics``, ``ImageMagics``…, each with its own ``@magics_class`` table), and
  :class:`DeepInfraMagics` inherits them all and merges their tables. To a type checker a
  family is a ``FamilyMagics``; at run time it is a plain mixin (``base.Family``), so the
  traitlets classes defined at load are three: the settings, the shared state and this
  one. One instance is registered: ``%config DeepInfraMagics`` keeps every trait under the
  one name users know, every magic is bound to that instance, and the state the families
  share (one client, the conversation, the cell log) exists once, with no delegation code
  between families.
  Separate registered instances would each be a configurable of their own in ``%config``
  and would need the shared state handed around; one class delegating to family modules
  would put each magic's declaration apart from its logic.
* Loading imports the families' declarations only (IPython, traitlets, the standard
  library and the light core): the client, httpx, the display, the map machinery, the
  attachments and the catalog load on the first magic that needs each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import FamilyMagics
from .chat import ChatMagics
from .classroom import ClassroomMagics
from .history import ConversationMagics
from .images import ImageMagics
from .maps import MapMagics
from .models import ModelMagics

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["FAMILIES", "MAGIC_NAMES", "DeepInfraMagics", "load", "unload"]

FAMILIES = (
    ChatMagics, ImageMagics, MapMagics, ModelMagics, ClassroomMagics, ConversationMagics
)  # fmt: skip


class DeepInfraMagics(
    ChatMagics,
    ImageMagics,
    MapMagics,
    ModelMagics,
    ClassroomMagics,
    ConversationMagics,
    FamilyMagics,
):
    """DeepInfra chat, images, maps and recordings in IPython: every family in one
    instance. Settings (``%config DeepInfraMagics``) come from ``MagicSettings``; the API
    key is never one of them (use the environment or ``%deepinfra_login``)."""


# ``@magics_class`` built one table per family; the one class serves them all.
DeepInfraMagics.magics = {
    kind: {name: method for family in FAMILIES for name, method in family.magics[kind].items()}
    for kind in ("line", "cell")
}

# Every magic, by kind (unload and the tests use it).
MAGIC_NAMES = {kind: tuple(table) for kind, table in DeepInfraMagics.magics.items()}


def load(shell: InteractiveShell) -> None:
    """Register the magics once (a second load replaces the first)."""
    if "DeepInfraMagics" in shell.magics_manager.registry:
        unload(shell)
    magics = DeepInfraMagics(shell)
    shell.register_magics(magics)
    magics.watcher.connect()


def unload(shell: InteractiveShell) -> None:
    """Remove every magic, close the client, and drop the configurable."""
    instance = shell.magics_manager.registry.pop("DeepInfraMagics", None)
    for kind, names in MAGIC_NAMES.items():
        table = shell.magics_manager.magics[kind]
        for name in names:
            bound = table.get(name)
            if getattr(bound, "__self__", None) is instance:
                table.pop(name, None)
    if isinstance(instance, DeepInfraMagics):
        instance.watcher.disconnect()
        instance.session.close()
        configurables: list[Any] = shell.configurables
        if instance in configurables:
            configurables.remove(instance)
