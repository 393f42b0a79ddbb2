"""gunicorn's settings for the portal's web process.

    gunicorn -c docker/gunicorn.conf.py cinc_portal.wsgi

The image's command. Environment: PORT (8000), WEB_CONCURRENCY (worker
processes, 3), GUNICORN_TIMEOUT (seconds, 30), FORWARDED_ALLOW_IPS (read by
gunicorn itself), GUNICORN_CMD_ARGS (any other flag).

gunicorn's own lines (start-up, worker timeouts, one access line per request)
go through the portal's logging configuration, so they come out in the same
format (JSON in production) and through the same redaction as the app's.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cinc_portal import settings  # noqa: E402 - needs the path above

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20

# The heartbeat file on a RAM disk, not the container's overlay filesystem
# (gunicorn creates it with mkstemp, so a shared folder is safe).
_SHM = "/dev/shm"  # noqa: S108
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM

# No runtime control socket: nothing uses it, and $HOME is read-only here.
control_socket_disable = True

# Logging: the settings' configuration (which also fails fast, before any
# worker starts, when a required setting is missing). Access lines carry the
# path without its query string, which may hold an OAuth code.
logconfig_dict = settings.LOGGING
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
