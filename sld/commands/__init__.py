"""Subcommand implementations, imported lazily by sld.cli."""
