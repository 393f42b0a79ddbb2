"""Brokers' CINC connections: the OAuth2 connect flow and the tokens."""
