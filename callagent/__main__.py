"""``python -m callagent``: the same as the ``callagent`` command."""

from callagent.cli import main

main()
