"""One module per group of ``pocketbert`` subcommands; each has ``add_*(subparsers)``
functions that register a parser whose ``run`` default does the work."""
