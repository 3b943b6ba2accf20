"""Verify a botgate origin assertion the way an origin does, with PyJWT and only the key-set URL.

    python3 verify.py CERTS_URL ISSUER AUDIENCE   # assertions on stdin, one per line

Prints one line per assertion: `ok <kid> <claims JSON>` or `fail <error>`. One PyJWKClient
serves every line, so its key-set cache behaves as in a long-running origin; `fetches` on stderr
at the end counts how often it downloaded the key set. VERIFIER_LIFESPAN sets how long the key
set is cached (seconds, PyJWT's default 300) and VERIFIER_COOLDOWN how long a refresh for an
unknown kid waits after the last one (PyJWT's default 30).
"""
import inspect
import json
import os
import sys

import jwt

certs_url, issuer, audience = sys.argv[1:4]
fetches = 0


class CountingClient(jwt.PyJWKClient):
    def fetch_data(self):
        global fetches
        fetches += 1
        return super().fetch_data()


options = {"lifespan": float(os.environ.get("VERIFIER_LIFESPAN", "300"))}
if "cooldown_duration" in inspect.signature(jwt.PyJWKClient.__init__).parameters:
    options["cooldown_duration"] = float(os.environ.get("VERIFIER_COOLDOWN", "30"))
jwks = CountingClient(certs_url, **options)
for line in sys.stdin:
    token = line.strip()
    if not token:
        continue
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256", "ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "nbf", "iss", "aud"]},
        )
        print("ok", key.key_id, json.dumps(claims, sort_keys=True), flush=True)
    except Exception as e:  # every failure is an answer, not a crash
        print("fail", type(e).__name__, str(e).replace("\n", " "), flush=True)
print("fetches", fetches, file=sys.stderr)
