"""Helpers of the security tests: the URL map of the broker's apps, and the
bytes of a response (streamed or not)."""

from django.urls import URLPattern, URLResolver, get_resolver

NAMESPACES = ("leads", "accounts")


def app_urls():
    """(namespaced name, pattern) of every URL of the leads and accounts apps,
    found by walking the resolver, so a URL added later is included."""
    found = []

    def walk(patterns, namespace):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, entry.namespace or namespace)
            elif isinstance(entry, URLPattern) and namespace in NAMESPACES:
                found.append((f"{namespace}:{entry.name}", entry.pattern))

    walk(get_resolver().url_patterns, None)
    return found


def converters(pattern):
    """{parameter: converter} of a URL pattern."""
    return getattr(pattern, "converters", {})


def uuid_urls():
    """The URLs that take a parameter (all uuids: see test_isolation)."""
    return [(name, pattern) for name, pattern in app_urls() if converters(pattern)]


def body(response):
    """The response's bytes (a streamed export is read once and kept)."""
    if not response.streaming:
        return response.content
    if not hasattr(response, "read_body"):
        response.read_body = b"".join(response.streaming_content)
    return response.read_body
