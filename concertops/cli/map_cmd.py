"""``concertops map``: service maps, drafted from a service's own stores."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from concertops.cli.state import OPTIONS
from concertops.model.errors import UsageError

app = typer.Typer(help="Draft a service map for a service concertops has not seen.", no_args_is_help=True)


@app.command("discover")
def discover(
    out: Path = typer.Option(
        None, "--out", "-o", metavar="FILE", help="Write the draft here (default: standard output)."
    ),
    name: str = typer.Option("mine", "--name", help="The map's name."),
    probe: str = typer.Option(
        "",
        "--probe",
        metavar="PATH",
        help="A GET the service answers from its database (/api/…): the black-box probe of A-1 and B-3.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite FILE if it exists."),
) -> None:
    """Write a draft service map from the profile's stores, each field with its evidence as a comment.

    Tables, columns, keys, unique and status columns from information_schema; the queue and lock keys from
    a bounded Redis SCAN; topics, consumer groups and the event envelope from the broker; the zone the
    service writes its times in, from its rows' two clocks. Whatever it could not decide is marked
    TO CHECK. Then hold the draft against the service:

      concertops map discover --out mine.yml --probe '/api/concerts/dates?concertId=…'
      CONCERTOPS_SERVICE_MAP=mine.yml concertops doctor

    Exit 0 when every store was read (TO CHECK lines are listed on standard error), 3 when one could not
    be (the draft is still written, marked INCOMPLETE, with what the others showed).
    """
    from concertops.contract.draft_map import render
    from concertops.sources.discover import discover as read_stores

    if out is not None and out.exists() and not force:
        raise UsageError(f"{out} exists", "choose another --out, or add --force to overwrite it")
    if probe and not probe.startswith("/"):
        raise UsageError(f"--probe {probe!r} is not a path", "give the path of a GET, starting with /")
    profile = OPTIONS.load_profile()
    draft = read_stores(profile, name, probe)
    text = render(draft)
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}", "choose a writable --out") from None
        sys.stderr.write(
            f"wrote {out}: hold it against the service with CONCERTOPS_SERVICE_MAP={out} concertops doctor\n"
        )
    for line in draft.undecided:
        sys.stderr.write(f"TO CHECK {line}\n")
    for line in draft.incomplete:
        sys.stderr.write(f"INCOMPLETE {line}\n")
    raise typer.Exit(3 if draft.incomplete else 0)
