"""The broker's pages. Thin: parse input, call a selector or service, render.

Every view needs a signed-in broker and reads only that broker's rows
(``leads.selectors``); another broker's uuid is a 404. Query parameters are
bookmarkable and untrusted: a value that does not parse is ignored with a
message on the page, never a 500.
"""

import csv
import datetime as dt
import functools
import logging
import math
import uuid as uuid_lib
from dataclasses import dataclass
from types import SimpleNamespace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors as connection_selectors
from accounts.models import Connection
from accounts.services import ConnectionUnavailable
from cinc import errors as cinc_errors

from . import creation, selectors, services, sync
from .filters import LEAD_SORTS, AgentFilter, LeadFilter
from .forms import LeadForm
from .models import Agent, SyncRun
from .templatetags.portal import phone

logger = logging.getLogger(__name__)

# A uuid reversed once into a URL pattern, to be replaced by each row's.
_URL_SLOT = uuid_lib.UUID(int=0)

PAGE_SIZE = 50
MAX_PAGE_PARAM = 9
# The leads list counts its rows up to this many: past it the page says
# "more than", and offers the next page rather than the last.
LEAD_COUNT_LIMIT = 10_000
CSV_CHUNK = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A filter link is a few hundred characters. A longer query string is not
# read: the lists would echo it into every sort, page and export link, so a
# 1 MB link would make a 35 MB page.
MAX_QUERY_STRING = 4096


@dataclass(slots=True, kw_only=True)
class LeadRow:
    """A row of ``_lead_table.html``: what its cells show, as plain values.

    ``url`` is the lead's page, ``agent_url`` and ``agent_name`` its primary
    agent's (blank without one), ``site`` the name of its CINC site,
    ``registered_iso`` and ``registered_on`` the registration time in the
    broker's timezone as ``date:'c'`` and ``date:"M j, Y"`` would write it.
    Nothing here is marked safe: the template escapes every value.
    """

    uuid: uuid_lib.UUID
    url: str
    name: str
    first_name: str
    last_name: str
    email: str
    phone: str
    status: str
    status_slug: str
    source: str
    place: str
    agent_name: str
    agent_url: str
    site: str
    registered_at: dt.datetime | None
    registered_iso: str
    registered_on: str
    removed: bool


def _table_rows(leads):
    """``leads`` (dicts of ``selectors.LEAD_TABLE_FIELDS``) as ``LeadRow``.

    For a 50-row table, ``{% url %}`` twice a row, the ``date`` filters and
    the chains of ``default`` filters took most of its rendering; here each
    URL pattern is reversed once and every cell is worked out once.
    """
    lead_url = _url_of("leads:detail")
    agent_url = _url_of("leads:agent-detail")
    return [_table_row(lead, lead_url, agent_url) for lead in leads]


def _table_row(lead, lead_url, agent_url):
    registered_iso = registered_on = ""
    if lead["registered_at"]:
        moment = timezone.localtime(lead["registered_at"])
        registered_iso = moment.isoformat()
        registered_on = dateformat.format(moment, "M j, Y")
    agent = lead["primary_agent__uuid"]
    phones = ("cell_phone", "home_phone", "work_phone", "office_phone")
    return LeadRow(
        uuid=lead["uuid"],
        url=lead_url(lead["uuid"]),
        name=_named(lead, ""),
        first_name=lead["first_name"],
        last_name=lead["last_name"],
        email=lead["email"],
        phone=phone(next((lead[kind] for kind in phones if lead[kind]), "")),
        status=lead["status"],
        status_slug=slugify(lead["status"]),
        source=lead["source"],
        place=", ".join(part for part in (lead["city"], lead["state"]) if part),
        agent_name=_named(lead, "primary_agent__") if agent else "",
        agent_url=agent_url(agent) if agent else "",
        site=lead["connection__cinc_agent_name"] or lead["connection__cinc_username"],
        registered_at=lead["registered_at"],
        registered_iso=registered_iso,
        registered_on=registered_on,
        removed=lead["removed_at"] is not None,
    )


def _named(row, prefix):
    """The name of the lead or agent under ``prefix`` in ``row``, as its
    ``__str__`` writes it: full name, else email, else CINC id."""
    parts = (row[f"{prefix}first_name"], row[f"{prefix}last_name"])
    full_name = " ".join(part for part in parts if part)
    return full_name or row[f"{prefix}email"] or row[f"{prefix}cinc_id"]


def _url_of(name):
    """A function of a uuid giving the URL ``name`` of it: the pattern is
    reversed once, and each uuid put in its place."""
    before, _, after = reverse(name, args=[_URL_SLOT]).partition(str(_URL_SLOT))
    return lambda uuid: f"{before}{uuid}{after}"


# Dashboard --------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request):
    connections = selectors.connection_cards(broker=request.user)
    counts = selectors.lead_counts(broker=request.user) if connections else None
    weekly = selectors.weekly_new_leads(broker=request.user) if connections else []
    context = {
        "connections": connections,
        "counts": counts,
        "recent_leads": (
            _table_rows(selectors.recent_leads(broker=request.user)) if counts else []
        ),
        "first_sync_running": any(c.active_run for c in connections),
        "chart_data": {
            "labels": [dateformat.format(row["week"], "M j") for row in weekly],
            "counts": [row["count"] for row in weekly],
        },
        "weekly": weekly,
    }
    return render(request, "leads/dashboard.html", context)


@login_required
@require_POST
def sync_start(request, uuid):
    connection = connection_selectors.connection_get(broker=request.user, uuid=uuid)
    before = selectors.sync_run_latest(connection=connection)
    try:
        run = sync.sync_start(connection=connection)
    except ConnectionUnavailable as exc:
        messages.error(request, f"{exc} Reconnect it to sync.")
        return redirect("leads:dashboard")
    run.refresh_from_db(fields=["status", "error"])
    if before is not None and run.pk == before.pk:
        messages.info(request, "A sync of this site is already under way.")
    elif run.status == SyncRun.Status.FAILED:
        messages.error(request, run.error or "The sync could not be queued.")
    else:
        messages.success(request, "Sync queued. Its progress shows below.")
    return redirect(reverse("leads:dashboard") + f"#connection-{connection.uuid}")


@login_required
@require_GET
def sync_progress(request, uuid):
    connection = connection_selectors.connection_get(broker=request.user, uuid=uuid)
    run = selectors.sync_run_latest(connection=connection)
    return render(
        request,
        "leads/_sync_progress.html",
        {"connection": connection, "run": run, "polled": True},
    )


# Leads ----------------------------------------------------------------------


def _bounded_query(list_name):
    """Refuse a query string over ``MAX_QUERY_STRING``: back to the plain
    list ``list_name``, with a message."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if len(request.META.get("QUERY_STRING", "")) > MAX_QUERY_STRING:
                messages.error(
                    request,
                    "That link is too long to be a filter of this page, so it "
                    "was not used.",
                )
                return redirect(list_name)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _check_owned(request, model, name):
    """404 for a well-formed uuid in ``name`` that is not the broker's."""
    value = request.GET.get(name)
    if value:
        selectors.owned_uuid(broker=request.user, model=model, value=value)


def _lead_filter(request):
    _check_owned(request, Connection, "connection")
    _check_owned(request, Agent, "agent")
    return LeadFilter(
        request.GET,
        queryset=selectors.lead_base(broker=request.user),
        broker=request.user,
    )


def _page_number(request, problems):
    raw = request.GET.get("page", "1")
    if raw.isascii() and raw.isdigit() and len(raw) <= MAX_PAGE_PARAM:
        return max(1, int(raw))
    problems.append(f"Page: “{raw[:20]}” is not a page number; showing page 1.")
    return 1


def _page(request, queryset, problems):
    number = _page_number(request, problems)
    paginator = Paginator(queryset, PAGE_SIZE)
    if number > paginator.num_pages:
        if paginator.count:
            problems.append(
                f"Page {number} does not exist; showing the last page "
                f"({paginator.num_pages})."
            )
        number = paginator.num_pages
    page = paginator.page(number)
    page.elided_range = list(
        paginator.get_elided_page_range(number, on_each_side=2, on_ends=1)
    )
    return page


class LeadPage:
    """A page of the leads list, with what the templates read from a Django
    ``Page``.

    A lead book may hold 100,000 leads, and counting a filtered set of them
    reads each one. So the rows are counted only up to ``LEAD_COUNT_LIMIT``:
    beyond it ``paginator.count`` is a lower bound
    (``paginator.count_is_lower_bound``), the page links end with a gap and
    a "next" link instead of the last page. The page itself is read at its
    offset whatever the count (``selectors.lead_slice``), one row more than
    it shows to know whether another page follows.
    """

    def __init__(self, *, rows, number, count, count_is_lower_bound, has_next):
        self.object_list = rows
        self.number = number
        self._has_next = has_next
        # The pages known to exist: past a lower bound there is a row more.
        known = count + 1 if count_is_lower_bound else count
        self.paginator = SimpleNamespace(
            count=count,
            count_is_lower_bound=count_is_lower_bound,
            num_pages=max(1, math.ceil(known / PAGE_SIZE)),
            ELLIPSIS=Paginator.ELLIPSIS,
        )
        self.elided_range = self._links()

    def __len__(self):
        return len(self.object_list)

    def has_next(self):
        return self._has_next

    def has_previous(self):
        return self.number > 1

    def has_other_pages(self):
        return self.has_previous() or self.has_next()

    def next_page_number(self):
        return self.number + 1

    def previous_page_number(self):
        return self.number - 1

    def start_index(self):
        if not self.object_list:
            return 0
        return (self.number - 1) * PAGE_SIZE + 1

    def end_index(self):
        return (self.number - 1) * PAGE_SIZE + len(self.object_list)

    def _links(self):
        """Page numbers to link: the first, two either side of this one and
        the last (when known), with an ellipsis for each gap and one at the
        end when more pages may follow."""
        last = self.paginator.num_pages
        more = self.paginator.count_is_lower_bound
        wanted = {1, *range(self.number - 2, self.number + 3)}
        if not more:
            wanted.add(last)
        links = []
        for number in sorted(n for n in wanted if 1 <= n <= last):
            if links and number - links[-1] > 1:
                links.append(Paginator.ELLIPSIS)
            links.append(number)
        if more:
            links.append(Paginator.ELLIPSIS)
        return links


def _lead_page(request, queryset, problems):
    """The page of ``queryset`` the request asks for: two queries (the count
    up to the limit, and the page), and for a page past the end the last
    page instead (after an exact count when the list is past the limit)."""
    number = _page_number(request, problems)
    counted = selectors.lead_count_upto(queryset, LEAD_COUNT_LIMIT + 1)
    rows = _lead_rows_of_page(queryset, number)
    if not rows and number > 1:
        total = counted if counted <= LEAD_COUNT_LIMIT else queryset.count()
        last = max(1, math.ceil(total / PAGE_SIZE))
        if total:
            problems.append(
                f"Page {number} does not exist; showing the last page ({last})."
            )
        number = last
        rows = _lead_rows_of_page(queryset, number)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    seen = (number - 1) * PAGE_SIZE + len(rows)
    if counted <= LEAD_COUNT_LIMIT:
        count, lower_bound = counted, False
    elif not has_next:
        count, lower_bound = seen, False
    else:
        count, lower_bound = max(LEAD_COUNT_LIMIT, seen), True
    return LeadPage(
        rows=_table_rows(rows),
        number=number,
        count=count,
        count_is_lower_bound=lower_bound,
        has_next=has_next,
    )


def _lead_rows_of_page(queryset, number):
    offset = (number - 1) * PAGE_SIZE
    return selectors.lead_slice(queryset, offset=offset, limit=PAGE_SIZE + 1)


def _sort_columns(current, sorts):
    """For each sortable column: the sort to link to, and aria-sort."""
    columns = {}
    for key in sorts:
        if current == key:
            columns[key] = {"next": f"-{key}", "aria": "ascending"}
        elif current == f"-{key}":
            columns[key] = {"next": key, "aria": "descending"}
        else:
            columns[key] = {"next": key, "aria": "none"}
    return columns


@login_required
@require_GET
@_bounded_query("leads:list")
def lead_list(request):
    lead_filter = _lead_filter(request)
    problems = lead_filter.problems()
    page = _lead_page(request, lead_filter.qs, problems)
    connections = list(connection_selectors.connection_list(broker=request.user))
    context = {
        "filter": lead_filter,
        "form": lead_filter.form,
        "page": page,
        "problems": problems,
        "columns": _sort_columns(lead_filter.current_sort, LEAD_SORTS),
        "connections": connections,
        "several_connections": len(connections) > 1,
        "filtered": any(
            value for key, value in request.GET.items() if key not in ("page", "sort")
        ),
        # Asked by the template only when the page is empty.
        "syncing": lambda: SyncRun.objects.filter(
            connection__broker=request.user,
            status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING],
        ).exists(),
    }
    return render(request, "leads/lead_list.html", context)


class _Echo:
    def write(self, value):
        return value


def neutralise(value):
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _reads(*fields):
    """Mark a CSV cell function with the ``values()`` fields it reads."""

    def mark(value):
        value.fields = fields
        return value

    return mark


def _column(name):
    return _reads(name)(lambda row: row[name])


def _yes_no(name):
    return _reads(name)(lambda row: "yes" if row[name] else "no")


def _local(name):
    @_reads(name)
    def value(row):
        moment = row[name]
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""

    return value


def _agent(role):
    @_reads(
        *(f"{role}__{name}" for name in ("first_name", "last_name", "email", "cinc_id"))
    )
    def value(row):
        first, last = row[f"{role}__first_name"], row[f"{role}__last_name"]
        name = " ".join(part for part in (first, last) if part)
        return name or row[f"{role}__email"] or row[f"{role}__cinc_id"] or ""

    return value


# The CSV: (header, value of a row of ``CSV_FIELDS``). Rows are plain values,
# not model instances: an export of 100,000 leads stays quick.
CSV_COLUMNS = (
    ("CINC id", _column("cinc_id")),
    ("Registered", _local("registered_at")),
    ("First name", _column("first_name")),
    ("Last name", _column("last_name")),
    ("Email", _column("email")),
    ("Cell phone", _column("cell_phone")),
    ("Home phone", _column("home_phone")),
    ("Work phone", _column("work_phone")),
    ("Office phone", _column("office_phone")),
    ("Street", _column("street")),
    ("City", _column("city")),
    ("State", _column("state")),
    ("ZIP", _column("zip_code")),
    ("Status", _column("status")),
    ("Source", _column("source")),
    ("Buyer", _yes_no("is_buyer")),
    ("Median price", _column("buyer_median_price")),
    ("Average price", _column("buyer_average_price")),
    ("Favorite city", _column("buyer_favorite_city")),
    ("Buying timeline", _column("buyer_timeline")),
    ("Seller", _yes_no("is_seller")),
    ("Selling timeline", _column("seller_timeline")),
    ("Primary agent", _agent("primary_agent")),
    ("Listing agent", _agent("listing_agent")),
    ("Partner", _agent("partner")),
    ("CINC site", _column("connection__cinc_username")),
    ("Removed in CINC", _local("removed_at")),
)
# What the export reads: the fields the columns above read.
CSV_FIELDS = [name for _, value in CSV_COLUMNS for name in value.fields]


def _csv_rows(queryset):
    writer = csv.writer(_Echo())
    yield writer.writerow([label for label, _ in CSV_COLUMNS])
    for row in queryset.values(*CSV_FIELDS).iterator(chunk_size=CSV_CHUNK):
        yield writer.writerow([neutralise(value(row)) for _, value in CSV_COLUMNS])


@login_required
@require_GET
@_bounded_query("leads:list")
def lead_export(request):
    lead_filter = _lead_filter(request)
    problems = lead_filter.problems()
    if problems:
        # Exporting without the filter that could not be read would export
        # more than the broker asked for: send them back to the list, which
        # names the problem.
        messages.error(
            request,
            "Nothing was exported: some of the filters could not be used. "
            "Correct them, then export again.",
        )
        query = request.GET.urlencode()
        return redirect(reverse("leads:list") + (f"?{query}" if query else ""))
    queryset = lead_filter.qs
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(
        _csv_rows(queryset), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="leads-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def lead_detail(request, uuid):
    lead = selectors.lead_get(broker=request.user, uuid=uuid)
    context = {
        "lead": lead,
        "history": selectors.lead_history(lead=lead),
        "writes": selectors.lead_writes(lead=lead),
    }
    return render(request, "leads/lead_detail.html", context)


@login_required
@require_POST
def lead_refresh(request, uuid):
    lead = selectors.lead_get(broker=request.user, uuid=uuid)
    try:
        lead = services.lead_refresh(lead=lead, max_wait=creation.WEB_MAX_WAIT)
    except ConnectionUnavailable as exc:
        messages.error(request, f"{exc} The lead was not refreshed.")
    except cinc_errors.RateLimited:
        messages.error(
            request, "CINC is busy (rate limit). Please try again in a few seconds."
        )
    except cinc_errors.CincError as exc:
        logger.warning(
            "Refresh of lead %s failed: %s",
            lead.pk,
            type(exc).__name__,
            extra={"connection_id": lead.connection_id},
        )
        messages.error(request, f"CINC could not be asked for this lead ({exc}).")
    else:
        if lead.removed_at:
            messages.warning(request, "CINC no longer has this lead.")
        else:
            messages.success(request, "Refreshed from CINC.")
    return redirect("leads:detail", uuid=lead.uuid)


# Agents -----------------------------------------------------------------------


@login_required
@require_GET
@_bounded_query("leads:agent-list")
def agent_list(request):
    _check_owned(request, Connection, "connection")
    agent_filter = AgentFilter(
        request.GET,
        queryset=selectors.agent_list(broker=request.user),
        broker=request.user,
    )
    problems = agent_filter.problems()
    page = _page(request, agent_filter.qs, problems)
    connections = list(connection_selectors.connection_list(broker=request.user))
    context = {
        "filter": agent_filter,
        "form": agent_filter.form,
        "page": page,
        "problems": problems,
        "columns": _sort_columns(
            agent_filter.current_sort, ("name", "email", "status", "leads")
        ),
        "several_connections": len(connections) > 1,
        "connections": connections,
    }
    return render(request, "leads/agent_list.html", context)


@login_required
@require_GET
def agent_detail(request, uuid):
    agent = selectors.agent_get(broker=request.user, uuid=uuid)
    by_role = selectors.agent_leads(agent=agent)
    roles = [
        (key, label, _table_rows(rows), total)
        for key, label, (rows, total) in (
            ("primary", "Primary agent", by_role["primary_agent"]),
            ("listing", "Listing agent", by_role["listing_agent"]),
            ("partner", "Partner", by_role["partner"]),
        )
    ]
    return render(request, "leads/agent_detail.html", {"agent": agent, "roles": roles})


# New lead --------------------------------------------------------------------


def _creating_connection(request, connections):
    """(connection, named): the connection the form is for and whether the
    request named it. The one named (404 if not the broker's), else the
    first that may create leads, else the first."""
    value = request.POST.get("connection") or request.GET.get("connection")
    if value:
        chosen = selectors.owned_uuid(
            broker=request.user, model=Connection, value=value
        )
        if chosen is not None:
            return chosen, True
        messages.warning(request, "That CINC site link was not valid.")
    for connection in connections:
        if connection.can_create_leads:
            return connection, False
    return (connections[0] if connections else None), False


SITE_NOT_NAMED = (
    "The form did not say which CINC site the lead is for. Check the site "
    "named above and send it again."
)


@login_required
@require_http_methods(["GET", "POST"])
def lead_new(request):
    connections = list(connection_selectors.connection_list(broker=request.user))
    connection, named = _creating_connection(request, connections)
    context = {"connections": connections, "connection": connection}
    if connection is None or not connection.can_create_leads:
        context["unavailable"] = (
            creation.unavailable_reason(connection) if connection else None
        )
        return render(request, "leads/lead_new.html", context)

    data = request.POST or None
    if data is not None and "fill" in data:
        data = _filled_from_existing(request, connection)
    form = LeadForm(data, connection=connection)
    context["form"] = form
    if request.method != "POST" or not form.is_valid():
        return render(request, "leads/lead_new.html", context)
    if "edit" in request.POST or "fill" in request.POST:
        return render(request, "leads/lead_new.html", context)
    if not named:
        # The form always names its site: a lead is never sent to another
        # site than the one the broker saw.
        form.add_error(None, SITE_NOT_NAMED)
        return render(request, "leads/lead_new.html", context)

    data = form.lead_fields()
    confirmed = "confirm" in request.POST
    if confirmed and not creation.confirmation_valid(
        token=request.POST.get("confirm_token"),
        connection=connection,
        broker=request.user,
        data=data,
    ):
        messages.warning(
            request,
            "The confirmation has expired or the details changed. Please check "
            "the differences again.",
        )
        confirmed = False
    result = creation.lead_create(
        connection=connection, broker=request.user, data=data, confirmed=confirmed
    )
    return _created_response(request, form, result, context)


def _filled_from_existing(request, connection):
    """The posted form with its blanks taken from the existing lead named by
    ``existing_lead`` (the broker's, on this connection)."""
    data = request.POST.copy()
    lead = selectors.owned_lead(
        broker=request.user, connection=connection, value=data.get("existing_lead")
    )
    if lead is None:
        messages.warning(request, "The existing lead could not be found any more.")
        return data
    for name, value in creation.lead_form_values(lead).items():
        if not data.get(name) and value:
            data[name] = value
    messages.info(
        request,
        "The empty fields now hold the existing lead's details. Check them, "
        "then send the form.",
    )
    return data


def _created_response(request, form, result, context):
    outcome = result.outcome
    if outcome in (creation.Outcome.CREATED, creation.Outcome.UPDATED):
        level = messages.WARNING if result.surprise_update else messages.SUCCESS
        messages.add_message(request, level, result.message)
        if result.lead is not None:
            return redirect("leads:detail", uuid=result.lead.uuid)
        return redirect("leads:list")
    if outcome == creation.Outcome.EXISTS:
        context.update(
            result=result,
            confirm_token=creation.confirmation_token(
                connection=context["connection"],
                broker=request.user,
                data=form.lead_fields(),
            ),
        )
        return render(request, "leads/lead_new.html", context)
    if outcome == creation.Outcome.INVALID:
        form.apply_upstream_errors(result.errors)
    elif outcome == creation.Outcome.UNKNOWN:
        messages.warning(request, result.message)
    elif outcome == creation.Outcome.REFUSED:
        messages.error(request, result.message)
        if result.lead is not None:
            return redirect("leads:detail", uuid=result.lead.uuid)
    else:
        messages.error(request, result.message)
    context["result"] = result
    return render(request, "leads/lead_new.html", context)
