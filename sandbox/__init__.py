"""The bundled CINC sandbox: a stand-in CINC site for development and tests.

A separate process (``python -m sandbox serve``) with its own SQLite file,
serving the authorization server, the API and a loopback-only control API.
``sandbox.process.start_sandbox`` runs it for tests; ``sandbox.control``
drives it over HTTP. Nothing here imports Django.
"""
