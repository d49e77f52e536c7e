"""``python -m lstmzoo``: the same as the ``lstmzoo`` command."""

from .cli import main

main(prog_name="lstmzoo")
