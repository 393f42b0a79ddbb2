"""Command line: ``python -m sandbox seed ...`` and ``python -m sandbox serve ...``."""

import argparse
import logging
import os
import signal
import sys
import tempfile

from sandbox import seed
from sandbox.app import Sandbox, client_from_env
from sandbox.knobs import KNOB_DEFAULTS, KnobError, validate_knobs
from sandbox.server import make_server
from sandbox.store import Store

logger = logging.getLogger("sandbox")


def _say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _seed_arguments(parser):
    parser.add_argument("--agents", type=int, default=seed.DEFAULT_AGENTS)
    parser.add_argument("--leads", type=int, default=seed.DEFAULT_LEADS)
    parser.add_argument("--seed", type=int, default=seed.DEFAULT_SEED)
    parser.add_argument(
        "--second-site-agents", type=int, default=seed.DEFAULT_SECOND_SITE_AGENTS
    )
    parser.add_argument(
        "--second-site-leads", type=int, default=seed.DEFAULT_SECOND_SITE_LEADS
    )


def _seed_params(args):
    return {
        "agents": args.agents,
        "leads": args.leads,
        "seed": args.seed,
        "second_site_agents": args.second_site_agents,
        "second_site_leads": args.second_site_leads,
    }


def _describe(store):
    for site in store.sites_summary():
        _say(
            f"site {site['name']}: {site['agents']} agents, {site['leads']} leads;"
            f" brokers: {', '.join(site['brokers'])}"
        )
    _say(f"every agent's password: {seed.SANDBOX_PASSWORD}")


def seed_command(args):
    store = Store(args.db)
    if not store.is_empty() and not args.force:
        _say(f"{args.db} already has sites; nothing done (use --force to re-seed)")
        _describe(store)
        return 0
    app = Sandbox(store, seed_params=_seed_params(args))
    app.reseed({})
    _say(f"seeded {args.db} (seed {args.seed})")
    _describe(store)
    return 0


def _knob_arguments(parser):
    knobs = parser.add_argument_group("knobs (all changeable via /_sandbox/config)")
    knobs.add_argument("--window", type=float, default=KNOB_DEFAULTS["window"])
    knobs.add_argument("--limit", type=int, default=KNOB_DEFAULTS["limit"])
    knobs.add_argument("--token-ttl", type=float, default=KNOB_DEFAULTS["token_ttl"])
    knobs.add_argument("--code-ttl", type=float, default=KNOB_DEFAULTS["code_ttl"])
    for name in (
        "fail_rate",
        "early_429_rate",
        "latency",
        "slow_rate",
        "slow_seconds",
        "malformed_rate",
        "post_stall_seconds",
        "token_delay",
    ):
        flag = "--" + name.replace("_", "-")
        knobs.add_argument(flag, type=float, default=KNOB_DEFAULTS[name])
    knobs.add_argument("--token-fail", choices=("500", "400", "slow"), default=None)
    knobs.add_argument("--upsert", action="store_true")
    knobs.add_argument("--envelope", action="store_true")
    knobs.add_argument("--reset-format", choices=("iso", "epoch"), default="iso")
    knobs.add_argument("--random-seed", type=int, default=None)


def _knobs(args):
    return {name: getattr(args, name) for name in KNOB_DEFAULTS}


def _write_port_file(path, port):
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False) as handle:
        handle.write(str(port))
    os.replace(handle.name, path)


def serve_command(args):
    try:
        knobs = validate_knobs(_knobs(args))
    except KnobError as exc:
        _say(f"error: {exc}")
        return 2
    client = client_from_env(args.client_id, args.client_secret, args.redirect_uri)
    store = Store(args.db)
    app = Sandbox(store, knobs=knobs, client=client, seed_params=_seed_params(args))
    if app.seed_if_empty():
        logger.info("seeded the empty database %s", args.db)
    server = make_server(app, args.host, args.port)
    host, port = server.server_address[:2]
    logger.info(
        "CINC sandbox on http://%s:%s (client_id %s, db %s)",
        host,
        port,
        client.client_id,
        args.db,
    )
    if args.port_file:
        _write_port_file(args.port_file, port)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        server.server_close()
        store.close()
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    seeding = commands.add_parser("seed", help="create the demo and second sites")
    seeding.add_argument("--db", required=True, help="SQLite file")
    _seed_arguments(seeding)
    seeding.add_argument("--force", action="store_true", help="replace existing data")
    seeding.set_defaults(func=seed_command)

    serving = commands.add_parser("serve", help="run the sandbox HTTP server")
    serving.add_argument("--db", required=True, help="SQLite file")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    serving.add_argument("--port-file", help="write the bound port to this file")
    serving.add_argument("--client-id")
    serving.add_argument("--client-secret")
    serving.add_argument(
        "--redirect-uri", action="append", help="registered redirect URI (repeatable)"
    )
    serving.add_argument("--log-level", default="INFO")
    _seed_arguments(serving)
    _knob_arguments(serving)
    serving.set_defaults(func=serve_command)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
