"""One benchmark task in a fresh process: ``python -m bench.worker TASK``.

The parent (``bench.cli``) sets ``DATABASE_URL`` and ``VAR_DIR`` in the
environment to a scratch database and directory; this process sets Django
up on them, migrates, turns ``DEBUG`` off (no query log, as in production),
runs the task and writes its figures as JSON to ``--out``. Progress goes to
stderr.
"""

import argparse
import json
import os
import sys
import time

TASKS = {
    "writes": ("bench.writes", "run"),
    "writes-pair": ("bench.writes", "run_pair"),
    "writes-steps": ("bench.writes", "run_steps"),
    "writes-unindexed": ("bench.writes", "run_unindexed"),
    "sync": ("bench.sync_floor", "run"),
    "memory": ("bench.memory", "run"),
    "pages-seed": ("bench.pages", "seed"),
    "pages": ("bench.pages", "run"),
    "csv": ("bench.pages", "run_csv"),
}


def say(message):
    print(
        f"  [{time.strftime('%H:%M:%S', time.gmtime())}] {message}",
        file=sys.stderr,
        flush=True,
    )


def setup_django(*, migrate=True):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cinc_portal.settings")
    import django

    django.setup()
    from django.conf import settings

    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    # As in production: no query log kept in memory, no template debug.
    settings.DEBUG = False


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--params", default="{}", help="JSON keyword arguments")
    parser.add_argument("--out", required=True, help="where the JSON figures go")
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)

    setup_django(migrate=not args.no_migrate)
    import importlib

    module_name, function_name = TASKS[args.task]
    function = getattr(importlib.import_module(module_name), function_name)
    figures = function(progress=say, **json.loads(args.params))
    with open(args.out, "w") as handle:
        json.dump(figures, handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
