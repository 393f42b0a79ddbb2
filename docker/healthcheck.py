"""The web container's health check: GET /healthz from this container's
gunicorn; exit 0 on 200, 1 otherwise. Standard library only (the slim image
has no curl).

Django answers only to ALLOWED_HOSTS, so the request names the first of them
as its Host rather than 127.0.0.1.
"""

import os
import sys
import urllib.error
import urllib.request


def host_header():
    for name in os.environ.get("ALLOWED_HOSTS", "").split(","):
        name = name.strip().lstrip(".")
        if name and name != "*":
            return name
    return "localhost"


def main():
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    request = urllib.request.Request(url, headers={"Host": host_header()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        sys.stderr.write(f"healthz: {exc}\n")
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
