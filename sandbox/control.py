"""A small client of the sandbox's control API, for tests and benchmarks.

    control = SandboxControl("http://127.0.0.1:8001")
    control.reset(leads=100)
    control.config(fail_rate=0.5)
    callback = control.approve(authorize_url, "buum@cu.com", "sandbox")

``approve``/``deny`` fill the consent form over HTTP (no browser) and return
the URL the sandbox redirects to, i.e. the portal's callback URL with
``code``/``state`` or ``error``.
"""

import urllib.parse

import requests

DEFAULT_TIMEOUT = 10.0


class SandboxError(Exception):
    """The sandbox answered a control call with an unexpected status."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class SandboxControl:
    def __init__(self, base_url, *, timeout=DEFAULT_TIMEOUT, session=None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def __repr__(self):
        return f"SandboxControl({self.base_url!r})"

    def close(self):
        self.session.close()

    # -- plumbing ----------------------------------------------------------

    def _call(self, method, path, payload=None, expect=(200, 201)):
        response = self.session.request(
            method,
            f"{self.base_url}/_sandbox/{path.lstrip('/')}",
            json=payload,
            timeout=self.timeout,
        )
        if response.status_code not in expect:
            raise SandboxError(
                f"{method} /_sandbox/{path} answered {response.status_code}:"
                f" {response.text[:300]}",
                response.status_code,
            )
        return response.json()

    @staticmethod
    def _site_path(site, kind, record_id=None):
        path = f"sites/{urllib.parse.quote(site, safe='')}/{kind}"
        if record_id is not None:
            path += "/" + urllib.parse.quote(record_id, safe="")
        return path

    # -- state -------------------------------------------------------------

    def health(self):
        """True when the sandbox answers its health check."""
        try:
            return self._call("GET", "health").get("ok") is True
        except (requests.RequestException, SandboxError, ValueError):
            return False

    def config(self, **knobs):
        """Change knobs (if any are given) and return all current values."""
        if not knobs:
            return self._call("GET", "config")
        return self._call("POST", "config", knobs)

    def stats(self):
        return self._call("GET", "stats")

    def reset_stats(self):
        self._call("POST", "stats/reset")

    def reset_rate_limits(self):
        self._call("POST", "ratelimit/reset")

    def reset(
        self,
        *,
        agents=None,
        leads=None,
        seed=None,
        second_site_agents=None,
        second_site_leads=None,
    ):
        """Re-seed both sites, restore startup knobs, zero the stats."""
        payload = {
            "agents": agents,
            "leads": leads,
            "seed": seed,
            "second_site_agents": second_site_agents,
            "second_site_leads": second_site_leads,
        }
        return self._call(
            "POST", "reset", {k: v for k, v in payload.items() if v is not None}
        )

    def sites(self):
        return self._call("GET", "sites")["sites"]

    # -- records -----------------------------------------------------------

    def leads(self, site="demo"):
        """Every current lead of the site, in list order."""
        return self._call("GET", self._site_path(site, "leads"))["leads"]

    def agents(self, site="demo"):
        return self._call("GET", self._site_path(site, "agents"))["agents"]

    def lead(self, site, lead_id):
        return self._call("GET", self._site_path(site, "leads", lead_id))["lead"]

    def add_leads(self, site="demo", count=1):
        """Append ``count`` generated leads; returns their ids."""
        return self._call("POST", self._site_path(site, "leads"), {"count": count})[
            "ids"
        ]

    def add_lead(self, site, record):
        """Append one lead as given (id and registered_date filled if absent)."""
        payload = {"record": record}
        return self._call("POST", self._site_path(site, "leads"), payload)["ids"][0]

    def update_lead(self, site, lead_id, info=None, **fields):
        """Deep-merge ``info`` (and top-level ``fields``); null removes a key."""
        payload = dict(fields)
        if info is not None:
            payload["info"] = info
        path = self._site_path(site, "leads", lead_id)
        return self._call("PATCH", path, payload)["lead"]

    def delete_lead(self, site, lead_id):
        self._call("DELETE", self._site_path(site, "leads", lead_id))

    # -- tokens ------------------------------------------------------------

    def expire_tokens(self, site=None):
        """Expire access tokens now (of one site, or all); returns how many."""
        payload = {"site": site} if site else {}
        return self._call("POST", "tokens/expire", payload)["expired"]

    def revoke_tokens(self, site=None, agent=None):
        """Revoke access and refresh tokens (of a site/agent, or all)."""
        payload = {k: v for k, v in (("site", site), ("agent", agent)) if v}
        return self._call("POST", "tokens/revoke", payload)["revoked"]

    def issue_tokens(self, username, scope="api:read api:create"):
        """A token answer for an agent without the consent page."""
        return self._call(
            "POST", "tokens/issue", {"username": username, "scope": scope}
        )

    # -- consent -----------------------------------------------------------

    def _consent(self, authorize_url, form):
        split = urllib.parse.urlsplit(authorize_url)
        target = urllib.parse.urlunsplit(
            (split.scheme, split.netloc, split.path, "", "")
        )
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        fields = [(k, v) for k, v in query if k != "scope"]
        fields += [("requested_scope", v) for k, v in query if k == "scope"]
        response = self.session.post(
            target, data=fields + form, allow_redirects=False, timeout=self.timeout
        )
        location = response.headers.get("Location")
        if response.status_code in (301, 302, 303) and location:
            return location
        raise SandboxError(
            f"the consent form did not redirect (status {response.status_code})",
            response.status_code,
        )

    def approve(self, authorize_url, username, password, scopes=None):
        """Sign in and approve; returns the redirect target (callback URL).

        ``scopes`` limits the granted scopes (default: all requested).
        Raises SandboxError when the sandbox shows the form again (wrong
        password, no scope chosen) or an error page (bad client/redirect).
        """
        if scopes is None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize_url).query)
            scopes = " ".join(query.get("scope", ["api:read"])).split()
        elif isinstance(scopes, str):
            scopes = scopes.split()
        form = [("username", username), ("password", password), ("approve", "1")]
        form += [("scope", scope) for scope in scopes]
        return self._consent(authorize_url, form)

    def deny(self, authorize_url):
        """Press Deny; returns the redirect target (with error=access_denied)."""
        return self._consent(authorize_url, [("deny", "1")])
