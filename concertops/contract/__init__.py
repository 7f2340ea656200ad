"""What the CLI and the booking service agree on: tables, settings, metric and topic names, event ids.

Both sides import this package; neither imports the other.
"""
