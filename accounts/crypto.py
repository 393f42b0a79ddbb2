"""Encryption of OAuth tokens at rest (Fernet, with key rotation).

``settings.TOKEN_ENCRYPTION_KEYS`` lists Fernet keys: the first encrypts, all
of them decrypt, so a new key can be introduced before the old one is retired
(``manage.py rotate_token_key`` re-encrypts every stored token).
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class TokenDecryptionError(Exception):
    """A stored token cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet(keys):
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEY must be a Fernet key: 32 url-safe "
            "base64-encoded bytes (generate one with `python -c 'from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key()"
            ".decode())'`)."
        ) from exc


def _current():
    return _fernet(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def encrypt(plaintext):
    if not plaintext:
        return ""
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext):
    if not ciphertext:
        return ""
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenDecryptionError(
            "A stored token could not be decrypted with the configured keys."
        ) from None


def rotate(ciphertext):
    """Re-encrypt with the current key (no-op for empty values)."""
    if not ciphertext:
        return ""
    try:
        return _current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenDecryptionError(
            "A stored token could not be decrypted with the configured keys."
        ) from None
