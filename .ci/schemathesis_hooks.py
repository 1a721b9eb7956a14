"""Schemathesis hooks for Vitrine's contract check (.ci/schemathesis.sh).

tus PATCH and creation-with-upload bodies are `application/offset+octet-stream` (SPEC §12): raw
bytes, which schemathesis has no serializer for; reuse its binary one.
"""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
