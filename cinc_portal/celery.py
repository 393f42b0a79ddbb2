"""The Celery application.

Configuration comes from Django settings under the ``CELERY_`` namespace, so
the embedded default (a filesystem broker under ``var/``) and production
(Redis) differ only by environment variables.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cinc_portal.settings")

app = Celery("cinc_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
