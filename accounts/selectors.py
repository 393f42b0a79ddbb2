"""Reads of connections, always scoped to the signed-in broker."""

from django.shortcuts import get_object_or_404

from .models import Connection


def connection_list(*, broker):
    return Connection.objects.filter(broker=broker).order_by("connected_at")


def connection_get(*, broker, uuid):
    """The broker's own connection, or 404 (also for another broker's)."""
    return get_object_or_404(Connection, broker=broker, uuid=uuid)
