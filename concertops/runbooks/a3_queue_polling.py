"""A-3 — queue tokens wait for the next polling run to turn ACTIVE."""

from __future__ import annotations

from concertops.runbooks.verdicts import Firing


def verdict(firing: Firing) -> str | None:
    if firing("queue_active"):
        return (
            "more tokens are ACTIVE than the map's max_active_tokens lets in: the constant is stale (a "
            "deploy raised it?); correct deploy_constants.max_active_tokens before activating anything"
        )
    if firing("event_activation") and (firing("oldest_waiting") or firing("waiting_tokens")):
        return "tokens wait for the next polling run: event activation is off"
    if firing("activation_duration"):
        return "activation runs are slow enough to slip the next cycle"
    if firing("queue_waiting") or firing("queue_oldest_waiting"):
        return "tokens pile up WAITING between polling runs: activate the oldest now, then activate on events"
    return None
