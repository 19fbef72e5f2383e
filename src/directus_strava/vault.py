"""Encryption at rest for tokens, keyed by SERVICE_SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from directus_strava.errors import SecretKeyError


class Vault:
    """Encrypts and decrypts short secrets with a key derived from a passphrase."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"directus-strava/vault/v1",
            info=b"tokens",
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plain: str) -> str:
        """Encrypt `plain`; the result is safe to store."""
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        """Decrypt what `seal` produced, or explain that the key is wrong."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "Stored Strava tokens cannot be decrypted with this "
                "SERVICE_SECRET_KEY: set the key they were stored with, or "
                "reconnect the athletes with `directus-strava connect`."
            ) from None
