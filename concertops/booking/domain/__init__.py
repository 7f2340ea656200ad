"""The booking rules, as functions over a SQLAlchemy connection: no HTTP, no threads."""
