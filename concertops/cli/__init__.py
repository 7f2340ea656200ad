"""The command line: typer commands that parse, call, render and exit — no logic of their own."""
