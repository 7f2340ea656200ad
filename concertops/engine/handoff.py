"""Hand-offs: a change the service takes only by a deploy (its pool size, lock timings,
``MAX_ACTIVE_TOKENS``, an outbox...), on a service without runtime settings.

The service map's ``deploy_constants`` say, under the runbooks' setting names, each value now and where it
lives. With a ``handoff_hook`` in the profile (a command template such as
``deploy/set-env.sh {setting} {value}`` or ``kubectl set env deploy/booking {env}={value}``) the step runs
it once per change, without a shell, and checks its exit code; a failure fails the step with the hook's
exit code and its last stderr line (redacted), and later steps do not run. Without a hook the step prints
the exact change and records "handed over". Either way the verification that follows shows whether it took.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from concertops.engine.action_api import Context, Outcome
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.redact import redact_text

HOOK_TIMEOUT_S = 600.0  # a deploy may take minutes; a hook that hangs longer fails the step
HANDED_OVER = "handed over"
PLACEHOLDERS = ("setting", "value", "current", "where", "env", "runbook", "step")


# A deploy tool's error line may echo a credential: ``password=…``, ``token: …``, ``api-key=…``.
@dataclass(frozen=True)
class Change:
    setting: str
    value: Any
    current: Any
    where: str

    @property
    def env(self) -> str:
        """The setting as an environment variable's name (``max_active_tokens`` → ``MAX_ACTIVE_TOKENS``)."""
        return self.setting.upper()

    def describe(self) -> str:
        return f"{self.setting} {shown(self.current)} → {shown(self.value)} ({self.where})"


def shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def hand_over(ctx: Context, step: Step, changes: list[Change]) -> Outcome:
    """Each change to the profile's handoff_hook (once each, no shell), or to a person."""
    if not changes:
        return Outcome("ok", 0, "nothing to hand over: the service map already has these values")
    hook = ctx.profile.handoff_hook
    if not hook:
        text = "; ".join(c.describe() for c in changes)
        if ctx.dry_run:
            return Outcome("ok", len(changes), f"would hand over: {text}")
        return Outcome(HANDED_OVER, len(changes), f"handed over (deploy it): {text}")
    done = 0
    for change in changes:
        argv = command(hook, change, step)
        shown = redact_text(shlex.join(argv))
        if ctx.dry_run:
            ctx.would(f"hand-off hook: {shown}")
            done += 1
            continue
        ctx.note(f"hand-off hook: {shown}")
        code, last = _run(argv)
        if code != 0:
            raise HookFailed(f"hand-off hook exited {code} for {change.setting}: {redact_line(last)}")
        done += 1
    verb = "would run" if ctx.dry_run else "ran"
    return Outcome(
        "ok",
        done,
        f"{verb} the hand-off hook for " + "; ".join(c.describe() for c in changes),
        changed=not ctx.dry_run,
    )


class HookFailed(Exception):
    """The profile's hand-off hook exited non-zero (the step fails; later steps do not run)."""


def command(template: str, change: Change, step: Step) -> list[str]:
    """The hook's argv: the template split as a shell would, each word's placeholders filled (no shell
    ever sees the values)."""
    values = {
        "setting": change.setting,
        "value": shown(change.value),
        "current": shown(change.current),
        "where": change.where,
        "env": change.env,
        "runbook": step.id.split("/")[0],
        "step": step.id,
    }
    return [word.format_map(values) for word in shlex.split(template)]


def redact_line(line: str) -> str:
    """A hook's stderr line as it may be shown and audited: URL passwords and key=value credentials masked."""
    return redact_text(line)


def check_template(template: str) -> None:
    try:
        words = shlex.split(template)
        for word in words:
            word.format_map(dict.fromkeys(PLACEHOLDERS, ""))
    except (ValueError, KeyError, IndexError) as exc:
        raise UsageError(
            f"handoff_hook {redact_text(template)!r} is not a command template: {exc}",
            f"write words with placeholders from {{{'}, {'.join(PLACEHOLDERS)}}}",
        ) from None
    if not words:
        raise UsageError("handoff_hook is empty", "name a command, or remove handoff_hook")


def _run(argv: list[str]) -> tuple[int, str]:
    """(exit code, the last line of its stderr)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=HOOK_TIMEOUT_S, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {HOOK_TIMEOUT_S:g} s"
    lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
    return done.returncode, lines[-1].strip()[:300] if lines else "(no stderr)"
