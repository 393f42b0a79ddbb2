"""Benchmark 3: peak memory of a sync, as the lead count grows.

One worker process per size, so each peak belongs to one sync: a sandbox
with ``leads`` leads and a wide window (1,000 requests per second, so the
run is bound by the portal, not the limit), the OAuth connect, then the
sync in the foreground. The figures are the process's RSS just before the
sync and its peak while the sync ran (``VmHWM`` reset before the sync;
``ru_maxrss`` of the whole process is reported too). The sandbox is another
process and is not counted.
"""

from . import sync_floor

WINDOW = 1.0
LIMIT = 1000


def run(*, leads=100_000, progress=None):
    figures = sync_floor.run(leads=leads, window=WINDOW, limit=LIMIT, progress=progress)
    return {
        "leads": leads,
        "run_status": figures["run_status"],
        "records_seen": figures["records_seen"],
        "wall_s": figures["wall_s"],
        "leads_per_s": round(leads / figures["wall_s"]),
        "rss_before_mb": figures["rss_mb_before"],
        "sync_peak_rss_mb": figures["sync_peak_rss_mb"],
        "growth_mb": round(figures["sync_peak_rss_mb"] - figures["rss_mb_before"], 1),
        "process_peak_rss_mb": figures["peak_rss_mb"],
    }
