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


_STEP_ORDER = ("hash", "existing rows", "parse", "columns", "statement", "commit")
_PYTHON_STEPS = ("hash", "parse", "columns", "rest")


def _steps_text(steps):
    if not steps:
        return ""
    parts = [
        f"{step} {steps[step]:g}"
        for step in (*_STEP_ORDER, "rest")
        if steps.get(step) is not None
    ]
    return " µs, ".join(parts) + " µs"


def _writes(figures):
    lines = ["### Writes", ""]
    shares, ceilings, probes = [], [], []
    for db in _ordered(figures):
        data = figures[db]
        if "skipped" in data:
            continue
        name = _DB_NAMES.get(db, db)
        ratio = data["ratio"]
        pairs = len(data.get("pairs") or [])
        parts = []
        for key, label in (
            (
                "initial",
                f"empty mirror (median of {pairs} paired runs)"
                if pairs > 1
                else "empty mirror",
            ),
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
        steps = _steps_of(data)
        where = (
            f" A lead of the empty-mirror pass: {_steps_text(steps)}." if steps else ""
        )
        lines.append(f"- **{name}**: " + "; ".join(parts) + "." + where)
        if steps and all(steps.get(step) is not None for step in _PYTHON_STEPS):
            total = sum(value for value in steps.values() if value)
            python = sum(steps[step] for step in _PYTHON_STEPS)
            shares.append(f"{python / total:.0%} on {name}")
        ceiling = _ceiling(name, data, steps)
        if ceiling:
            ceilings.append(ceiling)
        probe = _unindexed_text(name, data)
        if probe:
            probes.append(probe)
    lines += [
        "",
        "Why: a new lead costs the database's own work, which the naive "
        "loop pays too, and Python's reading of the record, which the naive "
        "loop pays as well (it parses with the same code). `upsert_leads` hashes each "
        "record first and parses only new or changed ones, and writes a page "
        "with one statement per kind of row: new leads with a plain `INSERT` "
        "(`executemany` on SQLite, a `COPY` into the table on PostgreSQL), "
        "stored ones with `INSERT ... ON CONFLICT` (through a temporary table "
        "on PostgreSQL); pages that arrive faster than they are written are "
        "committed ten at a time, written without savepoints. Python's share of a new lead's time (hash, "
        "parse, columns and the rest) is "
        + (" and ".join(shares) or "small")
        + ". The `statement` and `commit` steps are the inserts into "
        "`leads_lead` and its indexes: "
        + _index_note(figures)
        + " Each index takes an insert at a random place for every new lead, "
        "and each commit writes every index page its rows touched (on "
        "SQLite, whole 4 KB pages into its write-ahead log, copied into the "
        "database file at each checkpoint), more of them as the mirror "
        "outgrows the page cache. The naive loop pays the same index work "
        "per row.",
        "",
        "How far the target is from reach, from this run's own figures: "
        + "; ".join(ceilings or ["not computed"])
        + ". What the indexes cost, measured in this run (the same leads "
        "into a `leads_lead` without the indexes that back neither its "
        "primary key nor a unique constraint, then those indexes built over "
        "the rows): "
        + "; ".join(probes or ["not measured"])
        + ". The naive loop's rate on PostgreSQL is set by one commit (one "
        "write-ahead log flush to disk) per lead, and varied between 250 and "
        "400 leads/s across runs on this machine, so its ratio moves with it "
        "more than the bulk rate does (hence the paired runs and their "
        "median).",
        "",
        "Measured while choosing (100,000 leads into an empty mirror; the "
        "statements alone, replayed with the `sqlite3` module or psycopg, "
        "at commit fc8dabc): SQLite's `INSERT ... ON CONFLICT` with foreign "
        "keys enforced cost 210 µs a lead against 131 µs for the plain "
        "`INSERT` now used for new leads; committing every 5,000 leads "
        "instead of every 500 brought the plain `INSERT` to 66 µs; without "
        "the list indexes it was 55 µs, without any secondary index 41 µs. On "
        "PostgreSQL the `COPY` of the same rows took 95 µs a lead with its "
        "commit, of which the trigram index of the search box took about "
        "28 µs and the foreign-key checks about 13 µs. Through "
        "`upsert_leads`, ten pages a commit instead of one took SQLite from "
        "5,000 to 7,000 leads/s and PostgreSQL from 5,200 to 7,800. SQLite's "
        "page cache and checkpoint interval (at commit 49201ca, the same "
        "replay): 51 µs a lead with its defaults (2 MiB, a checkpoint every "
        "1,000 pages), 42 µs with a 16 MiB cache, 36 µs with a 16 MiB cache "
        "and a checkpoint every 10,000 pages (the settings now), 34 µs with "
        "32 MiB; through `upsert_leads` these settings took the pass from "
        "8,650 to 10,100 leads/s, and the 100,000-lead sync's peak memory "
        "from 109 to 121 MB. A helper thread that checkpoints while a walk "
        "writes (`BackgroundCheckpoints`) took the pass through `upsert_leads` "
        "from 11,700-12,400 to 12,600-13,000 leads/s; with the commits' own "
        "checkpoints turned off as well it reached 13,300-13,700, but the "
        "log then never started over and grew to 374 MB in a 100,000-lead "
        "pass (75 MB with them). Handing a page's hashing and parsing to a "
        "second thread while the previous page is written gained nothing "
        "on either database (the threads take turns on the interpreter "
        "lock), nor did committing PostgreSQL's groups without waiting for "
        "the write-ahead log flush (`synchronous_commit = off`). Savepoints "
        "(at commit a4234a7): the sync wrote each page of a group in a "
        "savepoint, and a page's rows in another, so that a failed page or a "
        "refused row could be undone alone; on SQLite a savepoint copies "
        "every database page its writes change, and the replayed inserts "
        "took 51 µs a lead with a savepoint a page against 37 µs without. "
        "A group's pages are now written without them (a failed page rolls "
        "the group back, and its pages are written again the careful way): "
        "the statement step went from 46-49 to 28-32 µs a lead, and the "
        "pass from 9,365-10,231 to 10,876-12,943 leads/s (three runs each, "
        "alternated), while the sync's peak memory grew by 12 MB (the group "
        "keeps its pages' records for that rewrite).",
        "",
        "On SQLite the Python work does not fit in what the target leaves: "
        "the hash is what lets a re-sync skip an unchanged lead without "
        "parsing it (the re-sync ratios above), and the parse checks every "
        "value so a bad record is counted, not stored. Both were made "
        "cheaper at commits 71e3607 and d23fc18 (a record's canonical JSON "
        "written by orjson, byte for byte what `json.dumps` wrote: the hash "
        "13.4 -> 5.4 µs a lead; a row's parameters 7.8 -> 6.5 µs). The "
        "index probe above (when it ran) shows what is left on the "
        "database's side. Keeping no secondary index would make every sorted or filtered "
        "list page read the whole book, for a gain a first sync never sees: "
        "it is paced by CINC's limit. Building the indexes after a first load instead "
        "(drop them while the table is empty, create them when the walk "
        "ends) gives the probe's second figure, and is not done: it changes the schema while the portal "
        "runs (a first sync that crashes leaves the leads list without its "
        "indexes until the next sync, and a migration that touches one "
        "fails meanwhile), and the leads list of a broker whose first sync "
        "is still running would sort the whole mirror on every page. "
        "Dropping PostgreSQL's three "
        "foreign keys to the agents cut "
        "its commit from 10 to 5 µs a lead, with the pass's total within the "
        "run-to-run noise (50,000 leads, twice each way).",
        "",
        "Not done, and why: each list index serves one sort or filter of the "
        "leads list at 100,000 leads (see the pages benchmark, where every "
        "page is under its target), the trigram index keeps a search fast as "
        "the book grows, and the foreign keys keep the mirror whole; "
        "dropping one trades a one-time first sync for every page view or "
        "for integrity. Larger groups of pages would hold SQLite's write "
        "lock longer, and a failed commit re-fetches its whole group under "
        "CINC's rate limit. A first sync is paced by that limit (375 leads/s "
        "at best), far below either database's rate here.",
    ]
    return lines


def _steps_of(data):
    """Microseconds a lead in each step of the empty-mirror pass: from the
    steps probe, or (figures of runs before it) from the pass itself."""
    probe = data.get("steps") or {}
    return probe.get("steps_us_per_lead") or data["passes"]["initial"].get(
        "steps_us_per_lead"
    )


def _ceiling(name, data, steps):
    """What the database's own work (statement and commit) alone would
    allow, against the naive loop of the same run."""
    naive = (data.get("naive") or {}).get("insert") or {}
    if not steps or not naive.get("rows_per_s"):
        return None
    database = (steps.get("statement") or 0) + (steps.get("commit") or 0)
    if not database:
        return None
    naive_us = 1e6 / naive["rows_per_s"]
    budget = naive_us / WRITES_TARGET
    text = (
        f"on {name} the naive loop took {naive_us:,.0f} µs a lead and the "
        f"database's own work for a new lead (statement and commit) "
        f"{database:.0f} µs, so with no Python work at all the bulk path "
        f"would reach {naive_us / database:.1f}×; {WRITES_TARGET}× needs at "
        f"most {budget:.0f} µs a lead in all"
    )
    python = [steps.get(step) for step in _PYTHON_STEPS]
    if None not in python:
        left = budget - database
        text += (
            f", which leaves {max(left, 0):.1f} µs for the Python work "
            f"(hash, parse, columns and the rest), now {sum(python):.0f} µs"
        )
        if 0 < left < steps["hash"]:
            text += f": less than hashing a record alone ({steps['hash']:.1f} µs)"
    return text


def _unindexed_text(name, data):
    """The unindexed probe's figures against the naive loop, or None."""
    probe = data.get("unindexed")
    ratio = data.get("ratio") or {}
    if not probe or ratio.get("unindexed") is None:
        return None
    return (
        f"on {name}, without its {len(probe['dropped'])} secondary indexes "
        f"{probe['rows_per_s']:,} leads/s ({ratio['unindexed']}×), and "
        f"{probe['rows_per_s_with_build']:,} leads/s "
        f"({ratio['unindexed_with_build']}×) counting the "
        f"{probe['build_seconds']:.1f} s their build then took"
    )


def _index_note(figures):
    counts = {
        _DB_NAMES.get(db, db): data.get("lead_indexes")
        for db, data in figures.items()
        if "skipped" not in data and data.get("lead_indexes")
    }
    if not counts:
        return ""
    listed = ", ".join(f"{count} on {db}" for db, count in counts.items())
    return f"`leads_lead` has {listed} (unique constraints included)."


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
        "median; the rest is the view, the filter form and the template. The "
        "filter menus are already written in one Python loop "
        "(`leads/filters.py`, no template per option) and the table rows "
        "from `values()` (`leads/views.py::_table_rows`); what remains is "
        "the page template itself.",
        "",
        "Fixes (leads, templates): write the 50 table rows as HTML in one "
        "function (about 3 ms a list page, measured by profile); cache the "
        "weekly chart's query under the mirror version like the dashboard's "
        "counts; merge the list page's two connection queries.",
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
            "- **A count of every lead.** The dashboard's counts are cached "
            "under the connections' `mirror_version` (`leads/selectors.py::"
            "lead_counts()`), so only the first visit after a write pays "
            "this; a query listed here is another grouping (the weekly "
            "chart) or a cache miss."
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
