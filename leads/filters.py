"""The filters of the leads and agents lists, read from the URL.

Every value arrives as text from a bookmark or a hand-edited URL. A value
that does not parse is dropped with a message (the rest of the filter still
applies); a uuid of another broker's connection or agent is a 404 (the
views check that first, through ``selectors.owned_uuid``).
"""

import datetime as dt

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import connection as db
from django.db.models import Q
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

from accounts.models import Connection

from . import selectors
from .models import Agent, Lead

MAX_SEARCH = 100
MAX_TEXT = 120
YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)

# Sort keys a URL may name, and the columns they order by (a tie-breaker on
# the primary key keeps paging stable).
LEAD_SORTS = {
    "registered": ("registered_at",),
    "name": ("last_name", "first_name"),
    "email": ("email",),
    "status": ("status",),
    "source": ("source",),
    "city": ("city",),
    "state": ("state",),
}
DEFAULT_LEAD_SORT = "-registered"
AGENT_SORTS = {
    "name": ("last_name", "first_name"),
    "email": ("email",),
    "status": ("status",),
    "leads": ("primary_count",),
}
DEFAULT_AGENT_SORT = "name"


def sort_choices(sorts):
    choices = []
    for key in sorts:
        choices += [(key, key), (f"-{key}", f"-{key}")]
    return choices


def order_by(sorts, value):
    descending = value.startswith("-")
    columns = sorts[value.lstrip("-")]
    prefix = "-" if descending else ""
    return [f"{prefix}{column}" for column in columns] + [f"{prefix}pk"]


def date_in_range(day):
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(
            "Enter a date between %(first)s and %(last)s.",
            code="date_out_of_range",
            params={"first": FIRST_DAY.year, "last": LAST_DAY.year},
        )


def attrs_html(attrs):
    """``attrs`` as Django's ``attrs.html`` writes them: ` name="value"`
    each, escaped; a True value is the bare name, a False one is left out."""
    parts = []
    for name, value in attrs.items():
        if value is False:
            continue
        if value is True:
            parts.append(f" {conditional_escape(name)}")
        else:
            parts.append(f' {conditional_escape(name)}="{_text(value)}"')
    return "".join(parts)


def _text(value):
    """``value`` escaped as the templates' ``{{ value|stringformat:'s' }}``
    would write it."""
    return conditional_escape(value if isinstance(value, str) else str(value))


class PlainInput:
    """An input widget written out here rather than through its template.

    The filter forms are drawn on every request of the lists; Django's
    widget templates (one render for the widget, one for its attributes,
    one per option of a menu) were a large part of a list's time. The HTML
    is the same (``tests/leads/test_filters.py`` compares them): the context
    comes from the widget's own ``get_context`` (value formatting, ``type``,
    ``checked``, the attributes the bound field adds: ``id``,
    ``aria-invalid``, ``aria-describedby``).
    """

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        value = widget["value"]
        shown = "" if value is None else f' value="{_text(value)}"'
        return mark_safe(  # noqa: S308 - every part is escaped above
            f'<input type="{_text(widget["type"])}" name="{_text(widget["name"])}"'
            f"{shown}{attrs_html(widget['attrs'])}>"
        )


class PlainTextInput(PlainInput, forms.TextInput):
    pass


class PlainDateInput(PlainInput, forms.DateInput):
    pass


class PlainCheckboxInput(PlainInput, forms.CheckboxInput):
    pass


class PlainSelect(forms.Select):
    """A menu written out here in one loop, as ``select.html`` and
    ``select_option.html`` would write it (the agent menu has an option per
    agent, each a template render before). Choices in groups are left to
    Django's templates."""

    def render(self, name, value, attrs=None, renderer=None):
        wanted = self.format_value(value)
        attributes = self.build_attrs(self.attrs, attrs)
        if self.allow_multiple_selected:
            attributes["multiple"] = True
        lines = [f'<select name="{_text(name)}"{attrs_html(attributes)}>']
        chosen = False
        # Iterated once: a model menu's choices are one query.
        for option_value, label in self.choices:
            if isinstance(label, (list, tuple)):
                return super().render(name, value, attrs, renderer)
            if option_value is None:
                option_value = ""
            may_select = not chosen or self.allow_multiple_selected
            selected = may_select and str(option_value) in wanted
            chosen |= selected
            lines.append(
                f'\n  <option value="{_text(option_value)}"'
                f"{' selected' if selected else ''}>{_text(label)}</option>\n"
            )
        lines.append("\n</select>")
        return mark_safe("".join(lines))  # noqa: S308 - every part is escaped


class BlankableDateField(forms.DateField):
    """A date; blank or only spaces means no date (not an error)."""

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip()
        return super().to_python(value)


class DateFilter(django_filters.DateFilter):
    field_class = BlankableDateField


class YesNoFilter(django_filters.ChoiceFilter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("choices", YES_NO[1:])
        kwargs.setdefault("empty_label", "Any")
        kwargs.setdefault("widget", PlainSelect)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value in ("yes", "no"):
            return qs.filter(**{self.field_name: value == "yes"})
        return qs


class BrokerFilterSet(django_filters.FilterSet):
    """A FilterSet whose menus list only the broker's own rows.

    Subclasses declare ``connection``, ``removed`` and ``sort`` filters (their
    labels differ) and set ``sorts`` / ``default_sort``; rows removed in CINC
    are hidden unless ``removed`` is ticked.
    """

    sorts = {}
    default_sort = ""

    def __init__(self, data=None, *args, broker, **kwargs):
        self.broker = broker
        super().__init__(data, *args, **kwargs)
        fields = self.form.fields
        fields["connection"].queryset = Connection.objects.filter(broker=broker)
        fields["connection"].label_from_instance = connection_label
        fields["sort"].required = False

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        cleaned = self.form.cleaned_data
        if not cleaned.get("removed"):
            queryset = queryset.filter(removed_at__isnull=True)
        if not cleaned.get("sort"):
            queryset = queryset.order_by(*order_by(self.sorts, self.default_sort))
        return queryset

    @property
    def current_sort(self):
        if (
            self.is_bound
            and self.form.is_valid()
            and self.form.cleaned_data.get("sort")
        ):
            return self.form.cleaned_data["sort"]
        return self.default_sort

    def filter_removed(self, queryset, name, value):
        return queryset  # applied in filter_queryset: hidden unless asked

    def filter_sort(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.order_by(*order_by(self.sorts, value))

    def problems(self):
        """One message per ignored value: "Label: reason"."""
        if not self.is_bound:
            return []
        messages = []
        for name, errors in self.form.errors.items():
            field = self.form.fields.get(name)
            label = field.label if field is not None and field.label else name
            messages.append(f"{label}: {' '.join(errors)} This filter was ignored.")
        return messages


class LeadFilter(BrokerFilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        max_length=MAX_SEARCH,
        help_text="Name, email or phone",
        widget=PlainTextInput,
    )
    status = django_filters.ChoiceFilter(
        label="Status", empty_label="Any status", widget=PlainSelect
    )
    source = django_filters.ChoiceFilter(
        label="Source", empty_label="Any source", widget=PlainSelect
    )
    buyer = YesNoFilter(label="Buyer", field_name="is_buyer")
    seller = YesNoFilter(label="Seller", field_name="is_seller")
    agent = django_filters.ModelChoiceFilter(
        label="Assigned agent",
        queryset=Agent.objects.none(),
        to_field_name="uuid",
        method="filter_agent",
        empty_label="Any agent",
        widget=PlainSelect,
    )
    city = django_filters.CharFilter(
        label="City",
        field_name="city",
        lookup_expr="iexact",
        max_length=MAX_TEXT,
        widget=PlainTextInput,
    )
    state = django_filters.CharFilter(
        label="State",
        field_name="state",
        lookup_expr="iexact",
        max_length=MAX_TEXT,
        widget=PlainTextInput,
    )
    registered_from = DateFilter(
        label="Registered from",
        method="filter_registered_from",
        validators=[date_in_range],
        widget=PlainDateInput(attrs={"type": "date"}),
    )
    registered_to = DateFilter(
        label="Registered to",
        method="filter_registered_to",
        validators=[date_in_range],
        widget=PlainDateInput(attrs={"type": "date"}),
    )
    connection = django_filters.ModelChoiceFilter(
        label="CINC site",
        queryset=Connection.objects.none(),
        to_field_name="uuid",
        empty_label="All sites",
        widget=PlainSelect,
    )
    removed = django_filters.BooleanFilter(
        label="Show leads removed in CINC",
        method="filter_removed",
        widget=PlainCheckboxInput,
    )
    sort = django_filters.ChoiceFilter(
        label="Sort",
        choices=sort_choices(LEAD_SORTS),
        method="filter_sort",
        empty_label=None,
        widget=PlainSelect,
    )

    sorts = LEAD_SORTS
    default_sort = DEFAULT_LEAD_SORT

    class Meta:
        model = Lead
        fields = []

    def __init__(self, data=None, *args, broker, **kwargs):
        super().__init__(data, *args, broker=broker, **kwargs)
        fields = self.form.fields
        statuses = selectors.lead_choices(broker=broker, column="status")
        for status in selectors.DOCUMENTED_LEAD_STATUSES:
            if status not in statuses:
                statuses.append(status)
        fields["status"].choices = [(s, s) for s in statuses]
        sources = selectors.lead_choices(broker=broker, column="source")
        fields["source"].choices = [(s, s) for s in sources]
        fields["agent"].queryset = selectors.agent_choices(broker=broker)
        fields["agent"].label_from_instance = agent_label

    def filter_search(self, queryset, name, value):
        return queryset.filter(selectors.search_q(value))

    def filter_agent(self, queryset, name, agent):
        if agent is None:
            return queryset
        if db.vendor != "sqlite":
            return queryset.filter(
                Q(primary_agent=agent) | Q(listing_agent=agent) | Q(partner=agent)
            )
        # SQLite keeps no table statistics: for the OR it walks all the
        # broker's leads on lead_facets and reads each one (0.36 s for
        # 100,000). The agent's lead ids from the three agent indexes
        # instead take 0.05 s. On PostgreSQL the OR is the faster of the two.
        roles = ("primary_agent", "listing_agent", "partner")
        first, *others = (
            Lead.objects.filter(**{role: agent}).order_by().values("pk")
            for role in roles
        )
        return queryset.filter(pk__in=first.union(*others))

    def filter_registered_from(self, queryset, name, day):
        if day is None:
            return queryset
        return queryset.filter(registered_at__gte=_day_start(day))

    def filter_registered_to(self, queryset, name, day):
        if day is None:
            return queryset
        return queryset.filter(registered_at__lt=_day_start(day + dt.timedelta(days=1)))


class AgentFilter(BrokerFilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        max_length=MAX_SEARCH,
        widget=PlainTextInput,
    )
    status = django_filters.ChoiceFilter(
        label="Status", empty_label="Any status", widget=PlainSelect
    )
    connection = django_filters.ModelChoiceFilter(
        label="CINC site",
        queryset=Connection.objects.none(),
        to_field_name="uuid",
        empty_label="All sites",
        widget=PlainSelect,
    )
    removed = django_filters.BooleanFilter(
        label="Show agents removed in CINC",
        method="filter_removed",
        widget=PlainCheckboxInput,
    )
    sort = django_filters.ChoiceFilter(
        label="Sort",
        choices=sort_choices(AGENT_SORTS),
        method="filter_sort",
        empty_label=None,
        widget=PlainSelect,
    )

    sorts = AGENT_SORTS
    default_sort = DEFAULT_AGENT_SORT

    class Meta:
        model = Agent
        fields = []

    def __init__(self, data=None, *args, broker, **kwargs):
        super().__init__(data, *args, broker=broker, **kwargs)
        fields = self.form.fields
        statuses = list(
            selectors.agent_base(broker=broker)
            .exclude(status="")
            .order_by("status")
            .values_list("status", flat=True)
            .distinct()[:100]
        )
        for status in selectors.DOCUMENTED_AGENT_STATUSES:
            if status not in statuses:
                statuses.append(status)
        fields["status"].choices = [(s, s) for s in statuses]

    def filter_search(self, queryset, name, value):
        query = Q()
        for word in value.split()[:8]:
            query &= (
                Q(first_name__icontains=word)
                | Q(last_name__icontains=word)
                | Q(email__icontains=word)
            )
        return queryset.filter(query)


def agent_label(agent):
    name = agent.full_name or agent.cinc_id
    return f"{name} ({agent.email})" if agent.email else name


def connection_label(connection):
    return connection.cinc_agent_name or connection.cinc_username


def _day_start(day):
    """Midnight at the start of ``day`` in the broker's timezone."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
