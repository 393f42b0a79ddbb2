"""The sandbox's SQLite file: sites, agents, leads, codes and tokens.

Records are kept as the JSON text the API answers with, so a page of 500
leads is one indexed query and a string join. Lists are ordered by ``seq``,
a monotonic integer that follows insertion order.

The database runs in WAL mode. Connections come from a small pool; each one
is used by a single thread at a time. Codes and tokens are stored as SHA-256
hashes, never as the values handed out.
"""

import contextlib
import hashlib
import json
import queue
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS sites (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (site, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS agents_username ON agents (username);
CREATE INDEX IF NOT EXISTS agents_site_seq ON agents (site, seq);
CREATE TABLE IF NOT EXISTS leads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT,
    data TEXT NOT NULL,
    UNIQUE (site, id),
    UNIQUE (site, email)
);
CREATE INDEX IF NOT EXISTS leads_site_seq ON leads (site, seq);
CREATE TABLE IF NOT EXISTS codes (
    hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    site TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    challenge TEXT,
    expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    site TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    expires_at REAL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tokens_grant ON tokens (grant_id);
CREATE INDEX IF NOT EXISTS tokens_owner ON tokens (site, agent_id);
"""

TABLES = ("sites", "agents", "leads", "codes", "tokens")


def secret_hash(value):
    """Hash a code, token or password for storage and lookup."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normal_email(email):
    if not isinstance(email, str) or not email.strip():
        return None
    return email.strip().lower()


def lead_email(record):
    info = record.get("info") if isinstance(record, dict) else None
    contact = info.get("contact") if isinstance(info, dict) else None
    return normal_email(contact.get("email")) if isinstance(contact, dict) else None


def dump(record):
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class DuplicateEmail(Exception):
    def __init__(self, existing_id):
        super().__init__("a lead with this email exists on the site")
        self.existing_id = existing_id


class DuplicateId(Exception):
    pass


class Store:
    def __init__(self, path):
        self.path = str(path)
        self._idle = queue.SimpleQueue()
        with self.connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    # -- connections -------------------------------------------------------

    def _open(self):
        conn = sqlite3.connect(
            self.path, timeout=15, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=15000")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    @contextlib.contextmanager
    def connection(self):
        """Borrow a connection for the calling thread, return it afterwards."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            self._idle.put(conn)

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction (BEGIN IMMEDIATE) on a borrowed connection."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def close(self):
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    # -- sites -------------------------------------------------------------

    def is_empty(self):
        with self.connection() as conn:
            return conn.execute("SELECT 1 FROM sites LIMIT 1").fetchone() is None

    def replace_all(self, sites):
        """Drop every row and load ``sites`` (see ``seed.build_sites``)."""
        with self.transaction() as conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            for position, site in enumerate(sites):
                name = site["name"]
                conn.execute("INSERT INTO sites VALUES (?, ?)", (name, position))
                conn.executemany(
                    "INSERT INTO agents (site, id, username, password_hash, roles,"
                    " data) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        (
                            name,
                            a["record"]["id"],
                            a["username"].lower(),
                            secret_hash(a["password"]),
                            json.dumps(a["roles"]),
                            dump(a["record"]),
                        )
                        for a in site["agents"]
                    ),
                )
                conn.executemany(
                    "INSERT INTO leads (site, id, email, data) VALUES (?, ?, ?, ?)",
                    (
                        (name, lead["id"], lead_email(lead), dump(lead))
                        for lead in site["leads"]
                    ),
                )

    def site_names(self):
        with self.connection() as conn:
            rows = conn.execute("SELECT name FROM sites ORDER BY position")
            return [name for (name,) in rows]

    def sites_summary(self):
        with self.connection() as conn:
            sites = []
            for (name,) in conn.execute("SELECT name FROM sites ORDER BY position"):
                brokers = [
                    username
                    for username, roles in conn.execute(
                        "SELECT username, roles FROM agents WHERE site = ?"
                        " ORDER BY seq",
                        (name,),
                    )
                    if "broker" in json.loads(roles)
                ]
                sites.append(
                    {
                        "name": name,
                        "brokers": brokers,
                        "agents": self.count("agents", name, conn=conn),
                        "leads": self.count("leads", name, conn=conn),
                    }
                )
            return sites

    # -- records -----------------------------------------------------------

    def count(self, table, site, conn=None):
        assert table in ("agents", "leads")
        sql = f"SELECT COUNT(*) FROM {table} WHERE site = ?"  # noqa: S608
        if conn is not None:
            return conn.execute(sql, (site,)).fetchone()[0]
        with self.connection() as conn:
            return conn.execute(sql, (site,)).fetchone()[0]

    def page(self, table, site, offset, limit):
        """JSON texts of one page of records, in insertion order."""
        assert table in ("agents", "leads")
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT data FROM {table} WHERE site = ?"  # noqa: S608
                " ORDER BY seq LIMIT ? OFFSET ?",
                (site, limit, offset),
            ).fetchall()
        return [data for (data,) in rows]

    def all_records(self, table, site):
        return self.page(table, site, 0, -1)

    def record(self, table, site, record_id):
        assert table in ("agents", "leads")
        with self.connection() as conn:
            row = conn.execute(
                f"SELECT data FROM {table} WHERE site = ? AND id = ?",  # noqa: S608
                (site, record_id),
            ).fetchone()
        return row[0] if row else None

    def existing_agent_ids(self, site, ids):
        ids = list(ids)
        if not ids:
            return set()
        marks = ",".join("?" for _ in ids)
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT id FROM agents WHERE site = ? AND id IN ({marks})",  # noqa: S608
                (site, *ids),
            )
            return {agent_id for (agent_id,) in rows}

    def agent_ids(self, site):
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM agents WHERE site = ? ORDER BY seq", (site,)
            )
            return [agent_id for (agent_id,) in rows]

    def lead_keys(self, site):
        """Ids and emails of the site's leads (to keep new ones unique)."""
        with self.connection() as conn:
            rows = conn.execute("SELECT id, email FROM leads WHERE site = ?", (site,))
            ids, emails = set(), set()
            for lead_id, email in rows:
                ids.add(lead_id)
                if email:
                    emails.add(email)
            return ids, emails

    def agent_login(self, username):
        """(site, agent id, password hash, roles) of a sign-in name, or None."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT site, id, password_hash, roles FROM agents WHERE username = ?",
                ((username or "").strip().lower(),),
            ).fetchone()
        if row is None:
            return None
        return row[0], row[1], row[2], json.loads(row[3])

    def agent_identity(self, site, agent_id):
        """(username, roles, record) of an agent, or None."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT username, roles, data FROM agents WHERE site = ? AND id = ?",
                (site, agent_id),
            ).fetchone()
        if row is None:
            return None
        return row[0], json.loads(row[1]), json.loads(row[2])

    # -- lead writes -------------------------------------------------------

    def _insert_lead(self, conn, site, record):
        try:
            conn.execute(
                "INSERT INTO leads (site, id, email, data) VALUES (?, ?, ?, ?)",
                (site, record["id"], lead_email(record), dump(record)),
            )
        except sqlite3.IntegrityError as exc:
            if "leads.email" in str(exc):
                existing = conn.execute(
                    "SELECT id FROM leads WHERE site = ? AND email = ?",
                    (site, lead_email(record)),
                ).fetchone()
                raise DuplicateEmail(existing[0] if existing else None) from None
            raise DuplicateId(record["id"]) from None

    def insert_lead(self, site, record):
        """Store a new lead; DuplicateEmail / DuplicateId on conflicts."""
        with self.transaction() as conn:
            self._insert_lead(conn, site, record)

    def insert_leads(self, site, records):
        """Store many new leads in one transaction (all or nothing)."""
        with self.transaction() as conn:
            for record in records:
                self._insert_lead(conn, site, record)

    def upsert_lead(self, site, record):
        """Update the lead with the same email, or create one.

        Returns (created, id). An update keeps the existing id, registered
        date and position, and replaces everything else.
        """
        email = lead_email(record)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id, data FROM leads WHERE site = ? AND email = ?",
                (site, email),
            ).fetchone()
            if row is None:
                self._insert_lead(conn, site, record)
                return True, record["id"]
            existing = json.loads(row[1])
            merged = {
                "id": row[0],
                "registered_date": existing.get(
                    "registered_date", record.get("registered_date")
                ),
            }
            merged.update(
                (k, v) for k, v in record.items() if k not in ("id", "registered_date")
            )
            conn.execute(
                "UPDATE leads SET data = ? WHERE site = ? AND id = ?",
                (dump(merged), site, row[0]),
            )
            return False, row[0]

    def update_lead(self, site, lead_id, change):
        """Apply ``change(record) -> record`` to a lead; None if it is gone."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT data FROM leads WHERE site = ? AND id = ?", (site, lead_id)
            ).fetchone()
            if row is None:
                return None
            record = change(json.loads(row[0]))
            try:
                conn.execute(
                    "UPDATE leads SET data = ?, email = ? WHERE site = ? AND id = ?",
                    (dump(record), lead_email(record), site, lead_id),
                )
            except sqlite3.IntegrityError:
                existing = conn.execute(
                    "SELECT id FROM leads WHERE site = ? AND email = ?",
                    (site, lead_email(record)),
                ).fetchone()
                raise DuplicateEmail(existing[0] if existing else None) from None
            return record

    def delete_lead(self, site, lead_id):
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM leads WHERE site = ? AND id = ?", (site, lead_id)
            )
            return cur.rowcount > 0

    # -- codes and tokens --------------------------------------------------

    def add_code(
        self,
        code,
        *,
        client_id,
        redirect_uri,
        scope,
        site,
        agent_id,
        challenge,
        expires_at,
    ):
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO codes (hash, client_id, redirect_uri, scope, site,"
                " agent_id, challenge, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    secret_hash(code),
                    client_id,
                    redirect_uri,
                    scope,
                    site,
                    agent_id,
                    challenge,
                    expires_at,
                ),
            )

    def redeem_code(self, code):
        """Mark a code used. Returns (row dict or None, was it unused)."""
        code_hash = secret_hash(code)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT hash, client_id, redirect_uri, scope, site, agent_id,"
                " challenge, expires_at, used FROM codes WHERE hash = ?",
                (code_hash,),
            ).fetchone()
            if row is None:
                return None, False
            conn.execute("UPDATE codes SET used = 1 WHERE hash = ?", (code_hash,))
        keys = (
            "grant_id",
            "client_id",
            "redirect_uri",
            "scope",
            "site",
            "agent_id",
            "challenge",
            "expires_at",
            "used",
        )
        found = dict(zip(keys, row, strict=True))
        return found, not found["used"]

    def add_tokens(
        self,
        *,
        access,
        refresh,
        client_id,
        scope,
        site,
        agent_id,
        grant_id,
        access_expires_at,
    ):
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO tokens (hash, kind, client_id, scope, site, agent_id,"
                " grant_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        secret_hash(access),
                        "access",
                        client_id,
                        scope,
                        site,
                        agent_id,
                        grant_id,
                        access_expires_at,
                    ),
                    (
                        secret_hash(refresh),
                        "refresh",
                        client_id,
                        scope,
                        site,
                        agent_id,
                        grant_id,
                        None,
                    ),
                ],
            )

    def revoke_grant(self, grant_id):
        with self.transaction() as conn:
            conn.execute(
                "UPDATE tokens SET revoked = 1 WHERE grant_id = ?", (grant_id,)
            )

    def use_refresh_token(self, token):
        """Invalidate a refresh token; its row dict if it was still valid."""
        token_hash = secret_hash(token)
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT client_id, scope, site, agent_id, grant_id FROM tokens"
                " WHERE hash = ? AND kind = 'refresh' AND revoked = 0",
                (token_hash,),
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE tokens SET revoked = 1 WHERE hash = ?", (token_hash,))
        keys = ("client_id", "scope", "site", "agent_id", "grant_id")
        return dict(zip(keys, row, strict=True))

    def refresh_token_info(self, token):
        """client_id, scope and revoked flag of a refresh token, or None."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT client_id, scope, revoked FROM tokens"
                " WHERE hash = ? AND kind = 'refresh'",
                (secret_hash(token),),
            ).fetchone()
        if row is None:
            return None
        return {"client_id": row[0], "scope": row[1], "revoked": bool(row[2])}

    def access_token(self, token, now=None):
        """The valid access token's holder, or None.

        Returns a dict with site, agent_id, scope, username and roles.
        """
        now = time.time() if now is None else now
        with self.connection() as conn:
            row = conn.execute(
                "SELECT t.site, t.agent_id, t.scope, a.username, a.roles"
                " FROM tokens t JOIN agents a ON a.site = t.site AND a.id = t.agent_id"
                " WHERE t.hash = ? AND t.kind = 'access' AND t.revoked = 0"
                " AND t.expires_at > ?",
                (secret_hash(token), now),
            ).fetchone()
        if row is None:
            return None
        return {
            "site": row[0],
            "agent_id": row[1],
            "scope": row[2].split(),
            "username": row[3],
            "roles": json.loads(row[4]),
        }

    def expire_access_tokens(self, site=None, now=None):
        now = time.time() if now is None else now
        sql = (
            "UPDATE tokens SET expires_at = ? WHERE kind = 'access' AND expires_at > ?"
        )
        args = [now - 1, now - 1]
        if site is not None:
            sql += " AND site = ?"
            args.append(site)
        with self.transaction() as conn:
            return conn.execute(sql, args).rowcount

    def revoke_tokens(self, site=None, agent_id=None):
        sql = "UPDATE tokens SET revoked = 1 WHERE revoked = 0"
        args = []
        if site is not None:
            sql += " AND site = ?"
            args.append(site)
        if agent_id is not None:
            sql += " AND agent_id = ?"
            args.append(agent_id)
        with self.transaction() as conn:
            return conn.execute(sql, args).rowcount
