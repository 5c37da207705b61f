"""The bodies of the ``callagent`` commands; :mod:`callagent.cli` declares them."""
