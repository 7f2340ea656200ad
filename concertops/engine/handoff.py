"""Hand-off steps: a change the service takes only by a deploy (its pool size, lock timings,
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
from dataclasses import dataclass, field
from typing import Any

from concertops.engine.action_api import Context, Outcome, check_limits
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.redact import redact_text
from concertops.runbooks import catalogue

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
        return f"{self.setting} {_shown(self.current)} → {_shown(self.value)} ({self.where})"


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class HandOff:
    """``set_settings`` / ``set_setting`` on a service whose settings change only by a deploy."""

    step: Step
    changes: list[Change] = field(default_factory=list)

    def prepare(self, ctx: Context) -> str:
        config = self.step.config
        wanted = (
            {config.setting: config.value}
            if isinstance(config, catalogue.SetSettingParams)
            else dict(config.settings)
        )
        constants = ctx.shape.deploy_constants
        self.changes = []
        for name, value in wanted.items():
            check_limits(self.step, name, value)  # a hand-off is held to the step's limits as a write is
            constant = constants.get(name)
            if constant is None:
                where = f"not in the service map's deploy_constants of {ctx.shape.name}: find where it lives"
                self.changes.append(Change(name, value, "?", where))
            elif constant.value != value:
                self.changes.append(Change(name, value, constant.value, constant.where))
        if ctx.profile.handoff_hook:
            _check_template(ctx.profile.handoff_hook)
        if not self.changes:
            return "already " + ", ".join(f"{k}={_shown(v)}" for k, v in wanted.items()) + " (service map)"
        how = "run the hand-off hook for" if ctx.profile.handoff_hook else "hand over (a deploy)"
        return f"{how}: " + "; ".join(c.describe() for c in self.changes)

    def run(self, ctx: Context) -> Outcome:
        if not self.changes:
            return Outcome("ok", 0, "nothing to hand over: the service map already has these values")
        hook = ctx.profile.handoff_hook
        if not hook:
            text = "; ".join(c.describe() for c in self.changes)
            if ctx.dry_run:
                return Outcome("ok", len(self.changes), f"would hand over: {text}")
            return Outcome(HANDED_OVER, len(self.changes), f"handed over (deploy it): {text}")
        done = 0
        for change in self.changes:
            argv = command(hook, change, self.step)
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
            f"{verb} the hand-off hook for " + "; ".join(c.describe() for c in self.changes),
            changed=not ctx.dry_run,
        )


class HookFailed(Exception):
    """The profile's hand-off hook exited non-zero (the step fails; later steps do not run)."""


def command(template: str, change: Change, step: Step) -> list[str]:
    """The hook's argv: the template split as a shell would, each word's placeholders filled (no shell
    ever sees the values)."""
    values = {
        "setting": change.setting,
        "value": _shown(change.value),
        "current": _shown(change.current),
        "where": change.where,
        "env": change.env,
        "runbook": step.id.split("/")[0],
        "step": step.id,
    }
    return [word.format_map(values) for word in shlex.split(template)]


def redact_line(line: str) -> str:
    """A hook's stderr line as it may be shown and audited: URL passwords and key=value credentials masked."""
    return redact_text(line)


def _check_template(template: str) -> None:
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
