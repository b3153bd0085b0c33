"""``python -m tribes``: the same as the ``tribes`` command."""

from tribes.cli import entry

entry()
