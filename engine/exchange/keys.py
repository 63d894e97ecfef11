"""Throwaway Coinbase-style (CDP, ES256) API keys for the emulator and tests."""
from __future__ import annotations

import hashlib

from .secrets import Credentials


def throwaway_credentials(seed: int | None = None) -> Credentials:
    """A fresh P-256 key PEM as secret and an ``organizations/.../apiKeys/...`` name as key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if seed is None:
        key = ec.generate_private_key(ec.SECP256R1())
    else:  # deterministic for reproducible fixtures
        n = int.from_bytes(hashlib.sha256(f"rulebook-key-{seed}".encode()).digest(), "big")
        key = ec.derive_private_key(n % (2**255) + 1, ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    tag = hashlib.sha256(pem.encode()).hexdigest()
    return Credentials(api_key=f"organizations/{tag[:8]}-local/apiKeys/{tag[8:20]}", secret=pem)


def public_key_of(credentials: Credentials):
    from cryptography.hazmat.primitives import serialization
    return serialization.load_pem_private_key(credentials.secret.encode(), password=None).public_key()
