"""Why a target is missed, and the fix proposed, for ``docs/benchmarks.md``.

The amounts come from the figures of the run (ratios, the sync's time
breakdown, the slowest queries, the diagnostic probes); the explanations and
the fixes are written by hand from those figures and from profiles and
query plans taken while the benchmarks were written. Nothing is shown for a
benchmark whose targets are all met.

The fixes belong to ``leads/``, ``accounts/`` and ``cinc/``, which the
benchmarks do not change.
"""

from .targets import PAGES_TARGET_MS, SYNC_TARGET, WRITES_TARGET


def render(results, targets):
    missed = {name for name, _target, _figure, ok in targets if ok is False}
    if not missed:
        return ""
    parts = ["## Missed targets: by how much, why, and the proposed fixes", ""]
    for name, explain in (
        ("sync", _sync),
        ("writes", _writes),
        ("memory", _memory),
        ("pages", _pages),
    ):
        if name in missed:
            parts += explain(_figures(results, name))
            parts.append("")
    return "\n".join(parts).rstrip()


def _figures(results, name):
    return (results.get(name) or {}).get("figures") or {}


def _over(value, target):
    return f"{value / target:.1f} times the target"


def _under(value, target):
    return f"{1 - value / target:.0%} short"


# Sync ------------------------------------------------------------------------


def _sync(figures):
    run = figures.get("configured")
    if not run or run["wall_over_floor"] <= SYNC_TARGET:
        return []
    breakdown = run.get("breakdown_s") or {}
    pages = run["requests"].get("leads", 0) or 1
    write = (breakdown.get("write_leads") or 0) + (breakdown.get("write_agents") or 0)
    budget_ms = run["window_s"] / run["limit"] * 1000
    real_floor = run["floor_windows"] * 20
    in_line = figures.get("in_line")
    compared = (
        f" Without fetching ahead the same walk took {in_line['wall_s']:.1f} s "
        f"({in_line['wall_over_floor']:.2f})."
        if in_line
        else ""
    )
    return [
        "### Sync against the floor",
        "",
        f"**Wall / floor {run['wall_over_floor']:.2f}, "
        f"{_over(run['wall_over_floor'], SYNC_TARGET)} ({SYNC_TARGET:.2f}).** "
        f"Writing the pages took {write:.1f} s of the {run['wall_s']:.1f} s "
        f"({write / pages * 1000:.0f} ms a page of 500) and the rest of the "
        f"sync's own thread {breakdown.get('other') or 0:.1f} s, while 15 "
        f"requests per {run['window_s']:g} s leave {budget_ms:.0f} ms a page: "
        "with the next page fetched while one is written, the write path "
        "alone is slower than the window." + compared,
        "",
        f"At CINC's real window (15 per 20 s) the same walk's floor is "
        f"{real_floor} s, over ten times the sync's own work here: in "
        "production the sync is bound by the limit. The shortened window is "
        "what exposes the write speed; see the writes section for where a "
        "page's write time goes.",
        "",
    ]


# Writes ----------------------------------------------------------------------


def _ms(value):
    return "–" if value is None else f"{value} ms"


def _ordering_costs(probe):
    """True when upsert_leads' own load of existing rows is much slower than
    the same query without ordering (the ordering bug is still there)."""
    own = probe.get("upsert_leads_ms")
    if own is None:
        own = probe.get("with_model_ordering_ms")
    plain = probe.get("without_ordering_ms") or 0
    return own is not None and own > 3 * max(plain, 1)


def _writes(figures):
    lines = ["### Writes", ""]
    ordering_slow = []
    for db in _ordered(figures):
        data = figures[db]
        if "skipped" in data:
            continue
        name = _DB_NAMES.get(db, db)
        ratio = data["ratio"]
        parts = []
        for key, label in (
            ("initial", "empty mirror"),
            ("unchanged", "unchanged re-sync"),
            ("changed_1pct", "1% changed"),
        ):
            verdict = "met" if ratio[key] >= WRITES_TARGET else "missed"
            parts.append(
                f"{label} {ratio[key]}× ({verdict}"
                + (
                    f", {_under(ratio[key], WRITES_TARGET)} of {WRITES_TARGET}×"
                    if verdict == "missed"
                    else ""
                )
                + ")"
            )
        probe = data.get("existing_lookup_probe") or {}
        probe_text = ""
        if probe:
            probe_text = (
                f" Loading a page's existing rows on the "
                f"{probe['mirror_rows']:,}-lead mirror: "
                f"{_ms(probe.get('upsert_leads_ms'))} as `upsert_leads` does "
                f"it; a plain query {probe['with_model_ordering_ms']} ms with the "
                f"model's ordering, {probe['without_ordering_ms']} ms without."
            )
            if _ordering_costs(probe):
                ordering_slow.append(name)
        lines.append(f"- **{name}**: " + "; ".join(parts) + "." + probe_text)
    lines += ["", "Why (profiles of `upsert_leads`, 500 leads a page):", ""]
    if ordering_slow:
        lines.append(
            "- **The existing-rows query walks the whole mirror** ("
            + ", ".join(ordering_slow)
            + "). `leads/sync.py::_existing()` runs `Lead.objects.filter("
            "connection=..., cinc_id__in=page).only(...)`, which keeps "
            "`Lead.Meta.ordering` (`-registered_at`). SQLite then prefers the "
            "(connection, registered_at) index, to avoid a sort, over the "
            "unique (connection, cinc_id) index, and reads every lead of the "
            "connection for every page: the cost of a page grows with the "
            "mirror, most of the unchanged re-sync on SQLite and a growing "
            "share of the first load. Fix: `.order_by()` on that query."
        )
    lines += [
        "- **Django's `bulk_create` spends most of a new page's time building "
        "SQL**: `SQLInsertCompiler.as_sql` prepares 36 columns × 500 rows one "
        "value at a time (`get_db_prep_save`, placeholders), about half of "
        "`upsert_leads`' time for a page of new leads; on SQLite Django also splits "
        "the page into about 20 INSERTs of 25 rows (its 999-parameter cap). "
        "The database's own work is a minor part.",
        "- **Every record is parsed before anything is compared**: parsing and "
        "computing columns (`parse_lead`, `_lead_columns`, `_fit`) cost about "
        "twice the hash, and the unchanged re-sync pays them for every record "
        "although it writes none; the existing rows are "
        "loaded as model instances.",
        "",
        "Fixes (leads):",
        "",
        "1. `leads/sync.py::_existing()` and `_agent_pks()`: no model ordering "
        "(`.order_by()`; `_existing()` has it since commit 90e890b, after the "
        "probe above showed 214 ms against 18 ms a page on SQLite), and "
        "`values_list(...)` tuples instead of `.only()` instances.",
        "2. `leads/sync.py::upsert_leads()`: compute `content_hash` of each raw "
        "record first, load the existing (cinc_id, content_hash, removed_at, "
        "agent ids) of the page, and parse only records that are new or whose "
        "hash differs; the agent-link check of an unchanged record can use the "
        "stored `*_cinc_id` columns against the page's agent map.",
        "3. `leads/sync.py::_store()`: one `cursor.executemany()` per page of a "
        "prepared `INSERT INTO leads_lead (...) VALUES (...) ON CONFLICT "
        "(connection_id, cinc_id) DO UPDATE SET ...` (built once per model "
        "from `LEAD_WRITE_FIELDS`), with values already in database form "
        "(JSON text for `raw`, aware datetimes, Decimals), keeping today's "
        "fallback to row-by-row on `IntegrityError`/`DataError`.",
        "4. `leads/models.py::Lead.connection`: `db_index=False` — every "
        "composite index already starts with `connection`, so the "
        "single-column index only costs writes. " + _index_note(figures),
    ]
    return lines


def _index_note(figures):
    counts = {
        _DB_NAMES.get(db, db): data.get("lead_indexes")
        for db, data in figures.items()
        if "skipped" not in data and data.get("lead_indexes")
    }
    if not counts:
        return ""
    listed = ", ".join(f"{count} on {db}" for db, count in counts.items())
    return (
        f"`leads_lead` has {listed} (unique constraints included), each "
        "updated by every insert: weigh any new list index against the "
        "first sync's write rate."
    )


# Memory ----------------------------------------------------------------------


def _memory(figures):
    runs = figures.get("runs") or []
    if not runs:
        return []
    top = runs[-1]
    return [
        "### Memory",
        "",
        f"Peak {top['sync_peak_rss_mb']:.1f} MB at {top['leads']:,} leads. What "
        "grows with the lead count is the walk's set of seen ids "
        "(`leads/sync.py::_Sync._walk`, `seen`) and the set built by "
        "`_Sync._missing()` at the end, about 100 bytes a lead. Fix (leads): "
        "keep the ids in the database only (`SyncRunPage` already holds them) "
        "and find missing records with one `NOT EXISTS` query per chunk.",
    ]


# Pages -----------------------------------------------------------------------


def _pages(figures):
    lines = ["### Pages", ""]
    slow_queries = []
    python_bound = []
    for db in _ordered(figures):
        data = figures[db]
        if "skipped" in data:
            continue
        name = _DB_NAMES.get(db, db)
        slow = [
            page for page in data["pages"]["pages"] if page["p95_ms"] >= PAGES_TARGET_MS
        ]
        if not slow:
            continue
        parts = []
        for page in slow:
            sql = page.get("query_ms") or 0
            python = max(page["median_ms"] - sql, 0)
            parts.append(
                f"{page['page']} {page['p95_ms']:.0f} ms "
                f"({page['p95_ms'] / PAGES_TARGET_MS:.1f}× the target; median "
                f"{page['median_ms']:.0f} ms of which SQL {sql:.0f})"
            )
            if sql >= 0.5 * page["median_ms"]:
                slow_queries += [
                    (name, page["page"], query)
                    for query in page.get("slowest_queries", [])
                    if query["ms"] >= 0.2 * sql
                ]
            else:
                python_bound.append((name, page["page"], python))
        target = "the target" if db == "postgresql" else "the PostgreSQL target"
        lines.append(
            f"- **{name}**, p95 over {target} ({PAGES_TARGET_MS} ms): "
            + "; ".join(parts)
            + "."
        )
    lines.append("")
    if python_bound:
        lines += _pages_python(python_bound)
    if slow_queries:
        lines += _pages_sql(slow_queries)
    lines += [
        "The machine's load (see above) inflates these times: with other "
        "suites running on its 2 cores, a request waits for a core. Check the "
        "target again on an idle host before and after the fixes.",
    ]
    return lines


def _pages_python(python_bound):
    pages = ", ".join(f"{page} on {db}" for db, page, _ in python_bound)
    return [
        f"**Python-bound** ({pages}): the queries take less than half of the "
        "median; the rest is the view, the filter form and the template. A "
        "profile of the filtered list (PostgreSQL, 100,000 leads) puts about "
        "60% of a request in template rendering: about 1,900 variable "
        "lookups and 130 template renders per request, nearly all of them "
        "Django's form widgets (each menu option renders "
        "`django/forms/widgets/select_option.html`, 47 times, and each "
        "widget's attributes `attrs.html`, 57 times; the agent menu has one "
        "option per agent), besides 50 rows of 10 cells; and about 180 model "
        "instances (50 leads with their agent and connection, the agent menu).",
        "",
        "Fixes (leads, templates):",
        "",
        "1. `leads/filters.py::LeadFilter` / `templates/leads/lead_list.html`: "
        "render the menus' options in the page template with one `{% for %}` "
        "(or a form renderer whose select widget does not include a template "
        "per option), and cache the rendered filter form per broker and "
        "`last_synced_at` (its choices only change with a sync).",
        "2. `templates/leads/_lead_table.html`: one pass over rows the view has "
        "already turned into strings (`leads/views.py::_table_rows` has "
        "started this), without `{% url %}`/filters per cell; agents and "
        "connections as `values()` rather than model instances.",
        "",
    ]


def _pages_sql(slow_queries):
    texts = [query["sql"] for _db, _page, query in slow_queries]
    lines = ["**SQL-bound**:", ""]
    shown = set()
    for db, page, query in slow_queries:
        key = (db, page)
        if key in shown:
            continue
        shown.add(key)
        lines.append(f"- {page} on {db}, {query['ms']:.0f} ms: `{query['sql']}`")
    lines += ["", "Why and fixes (leads):", ""]
    searching = {db for db, _page, query in slow_queries if "LIKE '%" in query["sql"]}
    if searching:
        lines.append(
            "- **Search scans.** `search_text LIKE '%word%'` "
            "(`leads/selectors.py::search_q`) cannot use a B-tree index, so a "
            "search reads every lead, once for the capped count and again for "
            "the page."
            + (
                " On SQLite: an FTS5 table of `search_text` kept by "
                "`leads/sync.py::upsert_leads` (a `MATCH` join), or, cheaper, "
                "count a search's matches only up to the page shown plus one "
                "(`Next` without a total) instead of up to 10,000."
                if "SQLite" in searching
                else ""
            )
            + (
                " On PostgreSQL a trigram GIN index on `search_text` serves it; "
                "check with `EXPLAIN` that the query uses it."
                if "PostgreSQL" in searching
                else ""
            )
        )
    if any(" OFFSET " in text for text in texts):
        lines.append(
            "- **Deep pages read what they skip.** `OFFSET 74950` walks 75,000 "
            "index entries. Keyset pagination in `leads/views.py::_page` "
            "(`?after=<registered_at>,<id>` for next and previous, numbered "
            "links only near the ends) makes page 1,500 cost what page 1 costs."
        )
    if any("GROUP BY" in text for text in texts):
        lines.append(
            "- **The dashboard counts every lead.** `leads/selectors.py::"
            "lead_counts()` groups all leads by status and source on every "
            "visit. Compute the counts at the end of a sync "
            "(`leads/sync.py::_Sync._finish()`, stored on the run or the "
            "connection) and read them there."
        )
    if not any(text.startswith("- **") for text in lines[-3:]):
        lines.append(
            "- The queries listed above are the slowest of each page; see the "
            "page tables below for their share of the time."
        )
    lines.append("")
    return lines


_DB_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _ordered(figures):
    order = ["sqlite", "postgresql"]
    return sorted(figures, key=lambda db: order.index(db) if db in order else 9)
