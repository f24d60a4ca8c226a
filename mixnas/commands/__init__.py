"""Subcommands of the ``mixnas`` command line, one module each.

Every module exposes ``add_to(subparsers)``, which declares its parser(s) and sets ``func`` to a
handler ``(args) -> exit status``. `mixnas.cli` discovers the modules listed in ``COMMANDS``.
"""

COMMANDS = (
    "mixnas.commands.space",
    "mixnas.commands.build",
    "mixnas.commands.search",
    "mixnas.commands.runs",
    "mixnas.commands.trials",
    "mixnas.commands.zoo",
    "mixnas.commands.latency",
    "mixnas.commands.supernet",
    "mixnas.commands.scale",
    "mixnas.commands.plugins",
    "mixnas.commands.recipe",
    "mixnas.commands.train",
    "mixnas.commands.ship",
)
