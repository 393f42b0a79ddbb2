"""The sandbox's HTML pages: sign-in/consent form, error page, index.

Every value that came from a request is passed through ``html.escape``.
"""

from html import escape

SCOPE_TEXT = {
    "api:read": "Read the site's agents and leads",
    "api:create": "Create leads on the site",
    "api:update": "Update information on the site",
    "api:delete": "Delete information on the site",
    "api:event": "Register for and receive events",
}

STYLE = """
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2433;
       margin: 0; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; padding: 2rem;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }
h1 { font-size: 1.3rem; margin-top: 0; }
label { display: block; margin: .8rem 0 .2rem; font-weight: 600; }
input[type=text], input[type=password] { width: 100%; box-sizing: border-box;
       padding: .5rem; border: 1px solid #b8bfcc; border-radius: 4px; }
fieldset { border: 1px solid #d9dde5; border-radius: 4px; margin: 1rem 0; }
fieldset label { font-weight: normal; margin: .3rem 0; }
.error { background: #fde8e8; color: #8a1c1c; padding: .6rem; border-radius: 4px; }
.buttons { display: flex; gap: .6rem; margin-top: 1.2rem; }
button { padding: .55rem 1.2rem; border-radius: 4px; border: 1px solid #1d4ed8;
         font-size: 1rem; cursor: pointer; }
#approve { background: #1d4ed8; color: #fff; }
#deny { background: #fff; color: #1d4ed8; }
.muted { color: #5b6475; font-size: .9rem; }
code { background: #eef0f4; padding: 0 .25rem; }
"""


def _page(title, content):
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body><main>{content}</main></body></html>"
    )


def consent_page(*, client_id, hidden, requested, granted, username, message):
    """The sign-in form with one checkbox per requested scope."""
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in hidden.items()
        if value is not None
    )
    boxes = "".join(
        '<label><input type="checkbox" name="scope"'
        f' id="scope-{escape(scope.replace(":", "-"))}" value="{escape(scope)}"'
        f"{' checked' if scope in granted else ''}> <code>{escape(scope)}</code>"
        f" {escape(SCOPE_TEXT.get(scope, ''))}</label>"
        for scope in requested
    )
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    content = (
        "<h1>Sign in to your CINC site</h1>"
        f'<p class="muted">The application <strong>{escape(client_id)}</strong>'
        " asks for access on your behalf.</p>"
        f"{error}"
        '<form method="post" action="/integrator/authorize" id="consent">'
        f"{fields}"
        '<label for="username">Email</label>'
        '<input type="text" name="username" id="username" autocomplete="username"'
        f' value="{escape(username or "")}">'
        '<label for="password">Password</label>'
        '<input type="password" name="password" id="password"'
        ' autocomplete="current-password">'
        f"<fieldset><legend>Allow access to</legend>{boxes}</fieldset>"
        '<div class="buttons">'
        '<button type="submit" name="approve" id="approve" value="1">Approve</button>'
        '<button type="submit" name="deny" id="deny" value="1">Deny</button>'
        "</div></form>"
        '<p class="muted">Sandbox: every agent\'s password is <code>sandbox</code>.'
        "</p>"
    )
    return _page("Sign in - CINC sandbox", content)


def error_page(title, message):
    content = (
        f'<h1>{escape(title)}</h1><p class="error" role="alert">'
        f"{escape(message)}</p>"
        '<p class="muted">The application sent an invalid authorization'
        " request, so you are not being sent back to it.</p>"
    )
    return _page(f"{title} - CINC sandbox", content)


def index_page(sites):
    rows = "".join(
        f"<li><code>{escape(site['name'])}</code>: brokers "
        f"{', '.join(escape(b) for b in site['brokers'])};"
        f" {site['agents']} agents, {site['leads']} leads</li>"
        for site in sites
    )
    content = (
        "<h1>CINC sandbox</h1>"
        "<p>A stand-in CINC site for development and tests.</p>"
        "<ul><li><code>/integrator/authorize</code>, <code>/integrator/token</code>"
        "</li><li>API: <code>/v2/site/...</code></li>"
        "<li>Control: <code>/_sandbox/...</code> (loopback only)</li></ul>"
        f"<h2>Sites</h2><ul>{rows}</ul>"
        '<p class="muted">Password of every agent: <code>sandbox</code>.</p>'
    )
    return _page("CINC sandbox", content)
