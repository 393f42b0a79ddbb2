"""Template context shared by every page: the broker's connections needing
attention, for the layout's reconnect banner."""

from .models import Connection


def connections(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def needing_reconnect():
        return list(
            Connection.objects.filter(
                broker=user, status=Connection.Status.NEEDS_RECONNECT
            ).only("uuid", "cinc_username", "cinc_agent_name", "last_error")
        )

    # A callable: the query runs only on pages whose layout asks for it.
    return {"connections_needing_reconnect": needing_reconnect}
