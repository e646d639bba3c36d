"""``python -m rbee_hive_cli``: the same as the ``rbee-hive`` console script."""

from rbee_hive_cli._main import main

main()
