"""Incident runbooks for the concert-booking service."""
