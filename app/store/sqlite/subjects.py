"""Reads of one subject across the tenant's clients (SQLite)."""

from __future__ import annotations

SUBJECT_SESSIONS = """SELECT DISTINCT device_session_id FROM credentials AS c
WHERE tenant_id = :tenant AND sub = :sub AND device_session_id IS NOT NULL AND exp > :now
AND NOT EXISTS (SELECT 1 FROM ended_sessions AS e
    WHERE e.tenant_id = c.tenant_id AND e.device_session_id = c.device_session_id
    AND e.tokens_end)
ORDER BY device_session_id"""
"""The subject's sessions not yet ended with their tokens (an SPID logout's stay, so a
Global Token Revocation still takes their tokens down): a range of ``credentials_subject``, then one
primary-key lookup of ``ended_sessions`` per session."""
