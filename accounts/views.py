"""The connect flow's pages. Thin: parse, call one service, redirect."""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services

logger = logging.getLogger(__name__)


@login_required
@require_http_methods(["GET", "POST"])
def connect(request):
    return redirect(services.connection_authorize_url(session=request.session))


@login_required
@require_POST
def reconnect(request, uuid):
    connection = selectors.connection_get(broker=request.user, uuid=uuid)
    return redirect(
        services.connection_authorize_url(session=request.session, reconnect=connection)
    )


@login_required
@require_http_methods(["GET"])
def callback(request):
    try:
        connection = services.connection_connect(
            broker=request.user, session=request.session, params=request.GET
        )
    except services.ConnectError as exc:
        logger.info("Connect flow ended for broker %s: %s", request.user.pk, exc.code)
        messages.error(request, exc.message)
        return redirect("leads:dashboard")

    messages.success(
        request,
        "Connected to CINC as %s. The first sync has been queued."
        % (connection.cinc_agent_name or connection.cinc_username),
    )
    if connection.disabled_features:
        messages.warning(
            request,
            "CINC granted fewer permissions than asked, so the portal cannot "
            + ", ".join(connection.disabled_features)
            + " for this site. Reconnect and approve them to enable it.",
        )
    return redirect("leads:dashboard")


@login_required
@require_http_methods(["GET", "POST"])
def disconnect(request, uuid):
    connection = selectors.connection_get(broker=request.user, uuid=uuid)
    if request.method == "GET":
        return render(request, "accounts/disconnect.html", {"connection": connection})

    delete_mirror = request.POST.get("delete_mirror") == "on"
    services.connection_disconnect(connection=connection, delete_mirror=delete_mirror)
    messages.success(
        request,
        "Disconnected. The portal has forgotten its CINC tokens for this site"
        + (" and deleted its mirrored agents and leads." if delete_mirror else "."),
    )
    return redirect("leads:dashboard")
