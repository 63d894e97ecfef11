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


def throwaway_credentials_for(ccxt_id: str, seed: int | None = None) -> Credentials:
    """Throwaway keys in the shape each exchange issues: Coinbase a CDP name and an ES256 PEM;
    Kraken a key and a base64 HMAC-SHA512 secret; Binance a 64-character key and HMAC-SHA256 secret."""
    if ccxt_id == "coinbase":
        return throwaway_credentials(seed)
    import base64
    import secrets as _secrets
    raw = hashlib.sha256(f"rulebook-{ccxt_id}-{seed}".encode()).digest() if seed is not None else _secrets.token_bytes(32)
    h = hashlib.sha512(raw).hexdigest()
    if ccxt_id == "kraken":
        return Credentials(api_key=base64.b64encode(raw + raw[:24]).decode(), secret=base64.b64encode(bytes.fromhex(h)).decode())
    return Credentials(api_key=h[:64], secret=h[64:128])
