"""Writes for CINC connections: the OAuth2 connect flow and token refresh.

Every function here takes keyword arguments and is called by thin views,
Celery tasks and management commands alike. No token value leaves this module
except as the return value of ``connection_access_token`` /
``connection_refresh`` (handed straight to the CINC client).
"""

import hmac
import logging
import secrets
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cinc import errors as cinc_errors
from cinc.client import CincClient
from cinc.oauth import (
    build_authorize_url,
    exchange_code,
    make_pkce_pair,
    refresh_tokens,
)

from .models import Connection

logger = logging.getLogger(__name__)

STATE_SESSION_KEY = "cinc_oauth_states"
MAX_PENDING_STATES = 5
REFRESH_MARGIN = timedelta(seconds=60)
USER_AGENT = "cinc-portal"


class ConnectError(Exception):
    """The connect flow ended without a usable connection.

    ``message`` is written for the broker; ``code`` names the outcome for
    tests and logs.
    """

    def __init__(self, message, *, code):
        super().__init__(message)
        self.message = message
        self.code = code


class ConnectionUnavailable(Exception):
    """The connection cannot call CINC: disconnected or needs reconnecting."""


def _http_session():
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def _timeout():
    return (settings.CINC_CONNECT_TIMEOUT, settings.CINC_TIMEOUT)


# The connect flow -----------------------------------------------------------


def connection_authorize_url(*, session, reconnect=None):
    """A fresh CINC consent URL; its ``state`` is kept in the broker's session.

    ``state`` is random, single-use and expires after ``OAUTH_STATE_TTL``
    seconds. At most ``MAX_PENDING_STATES`` flows are pending per session.
    """
    now = time.time()
    pending = {
        key: entry
        for key, entry in session.get(STATE_SESSION_KEY, {}).items()
        if now - entry.get("created", 0) < settings.OAUTH_STATE_TTL
    }
    while len(pending) >= MAX_PENDING_STATES:
        oldest = min(pending, key=lambda key: pending[key]["created"])
        del pending[oldest]

    state = secrets.token_urlsafe(32)
    entry = {"created": now, "reconnect": str(reconnect.uuid) if reconnect else ""}
    challenge = None
    if settings.CINC_USE_PKCE:
        entry["verifier"], challenge = make_pkce_pair()
    pending[state] = entry
    session[STATE_SESSION_KEY] = pending

    return build_authorize_url(
        settings.CINC_AUTHORIZE_URL,
        client_id=settings.CINC_CLIENT_ID,
        redirect_uri=settings.CINC_REDIRECT_URI,
        scopes=settings.CINC_SCOPES,
        state=state,
        code_challenge=challenge,
    )


def _take_state(session, state):
    """Remove and return the pending flow for ``state``, or raise."""
    pending = dict(session.get(STATE_SESSION_KEY, {}))
    match = None
    for key in pending:
        # Constant-time comparison, so timing says nothing about the value.
        if hmac.compare_digest(key.encode(), state.encode()):
            match = key
    if match is None:
        raise ConnectError(
            "This sign-in link has already been used or did not start here. "
            "Please connect your CINC site again.",
            code="bad_state",
        )
    entry = pending.pop(match)
    session[STATE_SESSION_KEY] = pending
    if time.time() - entry.get("created", 0) >= settings.OAUTH_STATE_TTL:
        raise ConnectError(
            "The CINC sign-in took too long and has expired. Please try again.",
            code="expired_state",
        )
    return entry


def _single(params, name, *, limit=2048):
    """One query parameter, refusing repeated or oversized values."""
    values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
    values = [value for value in values if value is not None]
    if not values:
        return ""
    if len(values) > 1 or len(values[0]) > limit:
        raise ConnectError(
            "CINC sent back an answer the portal cannot read. Please try again.",
            code="bad_request",
        )
    return values[0]


def connection_connect(*, broker, session, params):
    """Validate the callback, exchange the code, check the agent, save."""
    entry_code = _complete_checks(broker=broker, session=session, params=params)
    entry, code = entry_code
    tokens = _exchange(code=code, verifier=entry.get("verifier"))
    me = _who_consented(tokens=tokens)

    if "broker" not in me["roles"]:
        logger.warning("Consent from CINC agent %s refused: no broker role", me["id"])
        raise ConnectError(
            "The CINC user %s is not a broker on that site. CINC only lets "
            "brokers use the API, so nothing was connected. Ask a broker of "
            "the site to connect it." % me["username"],
            code="not_broker",
        )

    _check_reconnect(broker=broker, entry=entry, me=me)

    requested = list(settings.CINC_SCOPES)
    granted = list(tokens.scopes) if tokens.scopes is not None else requested
    with transaction.atomic():
        connection, created = Connection.objects.select_for_update().get_or_create(
            broker=broker,
            api_url=settings.CINC_API_URL,
            cinc_agent_id=me["id"],
            defaults={"cinc_username": me["username"]},
        )
        connection.cinc_username = me["username"]
        connection.cinc_agent_name = me.get("name") or connection.cinc_agent_name
        connection.cinc_roles = me["roles"]
        connection.scopes = granted
        connection.requested_scopes = requested
        connection.status = Connection.Status.ACTIVE
        connection.access_token = tokens.access_token
        connection.refresh_token = tokens.refresh_token
        connection.token_expires_at = tokens.expires_at
        connection.token_refreshed_at = timezone.now()
        connection.last_error = ""
        connection.last_error_at = None
        connection.connected_at = timezone.now()
        connection.disconnected_at = None
        connection.save()
        transaction.on_commit(lambda: _queue_first_sync(connection.pk))

    logger.info(
        "Connection %s %s for broker %s (scopes %s)",
        connection.pk,
        "created" if created else "reconnected",
        broker.pk,
        " ".join(granted),
        extra={"connection_id": connection.pk},
    )
    return connection


def _check_reconnect(*, broker, entry, me):
    """A reconnect must come back as the CINC user the connection belongs to.

    Otherwise the site would be connected (and mirrored) a second time under
    another user, and the connection needing reconnect would stay broken.
    """
    if not entry.get("reconnect"):
        return
    connection = Connection.objects.filter(
        broker=broker, uuid=entry["reconnect"]
    ).first()
    if connection is None or connection.cinc_agent_id == me["id"]:
        return
    raise ConnectError(
        "You signed in to CINC as %s, but this connection belongs to %s. "
        "Reconnect and sign in as %s; nothing was changed."
        % (me["username"], connection.cinc_username, connection.cinc_username),
        code="wrong_agent",
    )


def _complete_checks(*, broker, session, params):
    state = _single(params, "state", limit=200)
    error = _single(params, "error", limit=200)
    if not state:
        raise ConnectError(
            "CINC's answer was missing its security check (state). Please "
            "connect again.",
            code="missing_state",
        )
    entry = _take_state(session, state)
    if error == "access_denied":
        raise ConnectError(
            "You cancelled the connection on CINC's consent page; nothing was "
            "connected.",
            code="denied",
        )
    if error:
        raise ConnectError(
            "CINC did not grant access (it answered “%s”). Please try again."
            % error[:60],
            code="upstream_error",
        )
    code = _single(params, "code", limit=1024)
    if not code:
        raise ConnectError(
            "CINC's answer had no authorization code. Please connect again.",
            code="missing_code",
        )
    return entry, code


def _exchange(*, code, verifier):
    try:
        return exchange_code(
            _http_session(),
            settings.CINC_TOKEN_URL,
            client_id=settings.CINC_CLIENT_ID,
            client_secret=settings.CINC_CLIENT_SECRET,
            code=code,
            redirect_uri=settings.CINC_REDIRECT_URI,
            code_verifier=verifier,
            timeout=_timeout(),
        )
    except cinc_errors.OAuthError as exc:
        logger.warning("CINC refused the authorization code: %s", exc.error)
        raise ConnectError(
            "CINC refused the sign-in (%s). The link may have been used "
            "already or expired; please connect again." % exc.error,
            code="code_refused",
        ) from None
    except cinc_errors.UpstreamError as exc:
        logger.warning("CINC's token endpoint failed: %s", exc.kind)
        raise ConnectError(
            "CINC's sign-in service did not answer in time or failed. Nothing "
            "was connected; please try again in a few minutes.",
            code="token_endpoint_down",
        ) from None
    except cinc_errors.CincError:
        logger.warning("CINC's token endpoint sent an unreadable answer")
        raise ConnectError(
            "CINC's sign-in service sent an answer the portal cannot read. "
            "Please try again later.",
            code="token_endpoint_bad",
        ) from None


def _who_consented(*, tokens):
    client = CincClient(
        settings.CINC_API_URL,
        token=lambda: tokens.access_token,
        refresh=None,
        session=_http_session(),
        timeout=_timeout(),
        token_header=settings.CINC_TOKEN_HEADER,
    )
    try:
        me = client.me()
    except cinc_errors.NotBroker:
        raise ConnectError(
            "The CINC user who approved is not a broker on that site. CINC "
            "only lets brokers use the API, so nothing was connected.",
            code="not_broker",
        ) from None
    except cinc_errors.MissingScope:
        raise ConnectError(
            "CINC did not grant read access (api:read), which the portal needs "
            "for everything. Nothing was connected; please approve reading "
            "when you connect again.",
            code="no_read_scope",
        ) from None
    except cinc_errors.CincError as exc:
        logger.warning(
            "CINC `me` failed after the token exchange: %s", type(exc).__name__
        )
        raise ConnectError(
            "CINC accepted the sign-in but did not say who you are (%s). "
            "Nothing was connected; please try again." % type(exc).__name__,
            code="me_failed",
        ) from None
    return me


def _queue_first_sync(connection_id):
    """Queue the first sync as a run the dashboard can show at once."""
    # Imported here: accounts must not import leads at module import time.
    from leads.sync import sync_start

    try:
        sync_start(connection=Connection.objects.get(pk=connection_id))
    except Exception:  # never turn a made connection into an error page
        logger.exception(
            "Could not queue the first sync of connection %s",
            connection_id,
            extra={"connection_id": connection_id},
        )


# Tokens ----------------------------------------------------------------------


def _expiring(connection):
    if connection.token_expires_at is None:
        return False
    return connection.token_expires_at - timezone.now() <= REFRESH_MARGIN


def connection_access_token(*, connection_id):
    """A usable access token, refreshed first when it expires within a minute."""
    connection = Connection.objects.get(pk=connection_id)
    if connection.status != Connection.Status.ACTIVE:
        raise ConnectionUnavailable(_unavailable_message(connection))
    if not _expiring(connection):
        return connection.access_token
    return connection_refresh(
        connection_id=connection_id, stale=connection.access_token_ciphertext
    )


def connection_refresh(*, connection_id, stale):
    """Refresh the tokens of a connection; one refresh at a time, everywhere.

    ``stale`` is the access-token ciphertext the caller found wanting. The row
    is locked (``SELECT ... FOR UPDATE``; on SQLite the IMMEDIATE transaction
    takes the database write lock) and re-read: when another process has
    refreshed meanwhile, its token is returned and CINC is not asked again.
    The rotated refresh token is saved in the same transaction.
    """
    failure = None
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        if connection.status != Connection.Status.ACTIVE:
            raise ConnectionUnavailable(_unavailable_message(connection))
        if connection.access_token_ciphertext != stale and not _expiring(connection):
            return connection.access_token

        try:
            tokens = refresh_tokens(
                _http_session(),
                settings.CINC_TOKEN_URL,
                client_id=settings.CINC_CLIENT_ID,
                client_secret=settings.CINC_CLIENT_SECRET,
                refresh_token=connection.refresh_token,
                timeout=_timeout(),
            )
        except cinc_errors.OAuthError as exc:
            if not exc.permanent:
                raise
            failure = exc
            connection.status = Connection.Status.NEEDS_RECONNECT
            connection.forget_tokens()
            connection.last_error = (
                "CINC no longer accepts this connection's sign-in (%s). "
                "Reconnect to resume syncing." % exc.error
            )
            connection.last_error_at = timezone.now()
            connection.save()
        else:
            connection.access_token = tokens.access_token
            if tokens.refresh_token:
                connection.refresh_token = tokens.refresh_token
            connection.token_expires_at = tokens.expires_at
            connection.token_refreshed_at = timezone.now()
            if tokens.scopes is not None:
                connection.scopes = list(tokens.scopes)
            connection.save()

    if failure is not None:
        logger.warning(
            "Connection %s needs reconnecting: refresh refused (%s)",
            connection_id,
            failure.error,
            extra={"connection_id": connection_id},
        )
        raise ConnectionUnavailable(connection.last_error)
    logger.info(
        "Connection %s: access token refreshed",
        connection_id,
        extra={"connection_id": connection_id},
    )
    return connection.access_token


def _unavailable_message(connection):
    if connection.status == Connection.Status.NEEDS_RECONNECT:
        return "This CINC connection needs reconnecting."
    return "This CINC connection is disconnected."


class _ConnectionTokens:
    """Token provider and refresh callback for one connection's client.

    Remembers which token it handed out, so a 401 refreshes only when nobody
    else has refreshed since.
    """

    def __init__(self, connection_id):
        self.connection_id = connection_id
        self._ciphertext = None

    def token(self):
        connection = Connection.objects.only(
            "status", "access_token_ciphertext", "token_expires_at"
        ).get(pk=self.connection_id)
        if connection.status != Connection.Status.ACTIVE:
            raise ConnectionUnavailable(_unavailable_message(connection))
        if _expiring(connection):
            token = connection_refresh(
                connection_id=self.connection_id,
                stale=connection.access_token_ciphertext,
            )
            self._ciphertext = Connection.objects.values_list(
                "access_token_ciphertext", flat=True
            ).get(pk=self.connection_id)
            return token
        self._ciphertext = connection.access_token_ciphertext
        return connection.access_token

    def refresh(self):
        token = connection_refresh(
            connection_id=self.connection_id, stale=self._ciphertext
        )
        self._ciphertext = Connection.objects.values_list(
            "access_token_ciphertext", flat=True
        ).get(pk=self.connection_id)
        return token


def rate_limiter():
    """The limiter shared by every process of this installation."""
    from cinc import ratelimit

    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("redis://", "rediss://")):
        store = ratelimit.RedisStore(broker)
    else:
        store = ratelimit.FileStore(settings.CINC_RATELIMIT_DIR)
    return ratelimit.RateLimiter(
        store, limit=settings.CINC_RATE_LIMIT, window=settings.CINC_RATE_WINDOW
    )


# A broker waits for calls made from a page: one retry and a short read
# timeout keep the answer well inside the web server's own timeout (30 s).
INTERACTIVE_RETRIES = 1
INTERACTIVE_READ_TIMEOUT = 8.0


def connection_client(*, connection, on_event=None, max_wait=None, interactive=False):
    """A CINC client acting for ``connection`` with its tokens and limits.

    ``interactive`` is for calls a page waits on (refresh one lead, create a
    lead); background syncs keep the full retries and timeout.
    """
    tokens = _ConnectionTokens(connection.pk)
    timeout = _timeout()
    if interactive:
        timeout = (timeout[0], min(timeout[1], INTERACTIVE_READ_TIMEOUT))
    client = CincClient(
        connection.api_url,
        token=tokens.token,
        refresh=tokens.refresh,
        limiter=rate_limiter(),
        limiter_prefix=str(connection.uuid),
        timeout=timeout,
        token_header=settings.CINC_TOKEN_HEADER,
        max_wait=settings.CINC_MAX_INLINE_WAIT if max_wait is None else max_wait,
        get_retries=INTERACTIVE_RETRIES if interactive else 4,
        on_event=on_event,
    )
    client.session.headers["User-Agent"] = USER_AGENT
    return client


def connection_disconnect(*, connection, delete_mirror=False):
    """Forget the tokens at once; with ``delete_mirror`` remove everything."""
    connection_id = connection.pk
    if delete_mirror:
        connection.delete()
    else:
        connection.forget_tokens()
        connection.status = Connection.Status.DISCONNECTED
        connection.disconnected_at = timezone.now()
        connection.save()
    logger.info(
        "Connection %s disconnected%s",
        connection_id,
        " and its mirror deleted" if delete_mirror else "",
        extra={"connection_id": connection_id},
    )
