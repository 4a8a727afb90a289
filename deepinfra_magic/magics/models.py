"""The model family: ``%deepinfra_models`` (the catalog, and ``--pick`` to choose the
default model) and ``%deepinfra_login`` (a key for this kernel session).

Rules kept here:

* The options are declared right above each magic and read through it.
* A key (or a classroom token) is read without echo and goes straight into the client's
  headers: it is never a setting, printed, recorded or kept in this module. Of a token,
  the listing marks the models it allows (``session.scope``).
* The catalog and the display load on the first listing, not at ``%load_ext``.
"""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import magics_class, no_var_expand

from .._config import Secret
from .arguments import argument, magic_arguments, parse_argstring
from .base import Family, display, line_magic, one_line_errors

__all__ = ["ModelMagics"]


@magics_class
class ModelMagics(Family):
    """``%deepinfra_models`` and ``%deepinfra_login``."""

    @no_var_expand
    @line_magic
    @one_line_errors
    @magic_arguments("%deepinfra_models", "List DeepInfra's featured models.")
    @argument("--text", action="store_true", exclusive="kind")
    @argument("--images", action="store_true", exclusive="kind")
    @argument(
        "--vision", action="store_true", exclusive="kind", help="chat models that can see images"
    )
    @argument("--refresh", action="store_true")
    @argument("--pick", action="store_true")
    @argument("pattern", nargs="?")
    def deepinfra_models(self, line: str) -> None:
        """List DeepInfra's featured models (PATTERN: a substring or a glob like ``*flux*``)."""
        args = parse_argstring(self.deepinfra_models, line)
        client = self.client()
        catalog = self.session.catalog(client, refresh=args.refresh)
        kind = "text" if args.text else "image" if args.images else None
        kind = "vision" if args.vision else kind
        models = catalog.filter(args.pattern, kind)
        status = " · ".join(
            (
                self.session.key_status(client, self.replay),
                display.source_status(catalog),
                # A replay contacts no server: naming one would say otherwise.
                *(() if client.replaying else (client.routes.describe(),)),
            )
        )
        scope = self.session.scope
        allowed = scope.models if scope is not None and not client.replaying else None
        markdown, plain = display.models_table(models, status, args.pattern, allowed)
        self.show(markdown, plain)
        if args.pick:
            display.model_picker(self.frontend(), self, models, kind)

    @line_magic
    @one_line_errors
    def deepinfra_login(self, line: str) -> None:
        """Enter an API key or a classroom token without echo; it is kept for this kernel
        session only.

        ``%deepinfra_login --clear`` forgets it. A key is checked with one cheap request; a
        classroom token's line says what it allows (models, expiry, cap), never the token.
        """
        option = line.strip()
        if option not in ("", "--clear"):
            raise UsageError(
                "%deepinfra_login takes no key (it asks for it); usage: %deepinfra_login [--clear]"
            )
        if option == "--clear":
            print(self.session.log_out())
            return
        import getpass

        entered = getpass.getpass("DeepInfra API key or classroom token (input hidden): ")
        entered = entered.strip()
        if not entered:
            raise UsageError("%deepinfra_login: no key entered; nothing changed.")
        key = Secret(entered)
        del entered
        print(self.session.log_in(key))
