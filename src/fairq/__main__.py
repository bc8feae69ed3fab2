"""``python -m fairq``: the same as the ``fairq`` command."""

from .cli.main import main

main()
