"""``python -m tests.fake_deepinfra``: serve until SIGTERM/SIGINT (see ``cli.main``)."""

from .cli import main

main()
