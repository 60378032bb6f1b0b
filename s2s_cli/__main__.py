"""Entry point for `python -m s2s_cli`."""

from s2s_cli.cli import main

main()
