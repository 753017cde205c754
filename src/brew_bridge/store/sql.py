"""The outbox's SQL statements that are more than one line (the rest sit where they run).

Every statement of the project is in this package; nothing else writes SQL.
"""

from __future__ import annotations

__all__ = [
    "DEAD_LETTER_COLUMNS",
    "DEAD_LETTER_FROM",
    "DELETE_ORPHAN_RECORD",
    "DELIVERY_COLUMNS",
    "FINISH_RUN",
    "INSERT_DEAD_LETTER_FROM_DELIVERY",
    "INSERT_DELIVERY",
    "INSERT_INGEST_DEAD_LETTER",
    "INSERT_RECORD",
    "INSERT_RUN",
    "MARK_DEAD",
    "MARK_FIRED",
    "MARK_RETRY",
    "PRUNE_CHUNK",
    "RELEASE",
    "REQUEUE",
    "REQUEUE_WITH_KEY",
    "SELECT_DEAD_LETTERS",
    "SELECT_DELIVERY",
    "SELECT_DUE",
    "SELECT_PRUNABLE_DEAD_LETTERS",
    "SELECT_PRUNABLE_DELIVERIES",
    "SELECT_RECORD_ID",
    "SELECT_RUNS",
]

SELECT_RECORD_ID = "SELECT id FROM records WHERE source = ? AND stream = ? AND position = ?"
INSERT_RECORD = """
    INSERT INTO records (source, stream, position, key, headers, value, timestamp_ms,
                         created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (source, stream, position) DO NOTHING
"""
INSERT_DELIVERY = """
    INSERT INTO deliveries (route, target, action, idempotency_key, payload, ordering_key,
                            event_id, created_at, next_attempt_at, record_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (route, idempotency_key) DO NOTHING
"""
INSERT_INGEST_DEAD_LETTER = """
    INSERT INTO dead_letters (stage, reason, code, message, route, idempotency_key, details,
                              first_error_at, last_error_at, created_at, record_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING
"""

DELIVERY_COLUMNS = """
    d.id, d.route, d.target, d.action, d.idempotency_key, d.payload, d.ordering_key,
    d.event_id, d.state, d.attempts, d.created_at, d.first_attempt_at, d.next_attempt_at,
    d.last_error,
    r.source AS r_source, r.stream AS r_stream, r.position AS r_position, r.key AS r_key,
    r.headers AS r_headers, r.value AS r_value, r.timestamp_ms AS r_timestamp_ms
"""
SELECT_DUE = f"""
    SELECT {DELIVERY_COLUMNS}
    -- Walk the due index in order and stop at the limit (the planner would otherwise pick
    -- deliveries_state and sort every due row).
    FROM deliveries AS d INDEXED BY deliveries_due LEFT JOIN records AS r ON r.id = d.record_id
    WHERE d.state IN ('pending', 'retry_wait') AND d.next_attempt_at <= :now
      AND (:target IS NULL OR d.target = :target)
      AND (:ordered = 0 OR d.ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM deliveries AS e
            WHERE e.ordering_key = d.ordering_key AND e.id < d.id
              AND (:per_route = 0 OR e.route = d.route)
              AND e.state IN ('pending', 'retry_wait', 'firing')))
    ORDER BY d.next_attempt_at, d.id
    LIMIT :limit
"""  # noqa: S608 -- a constant fragment, no input
SELECT_DELIVERY = f"""
    SELECT {DELIVERY_COLUMNS}
    FROM deliveries AS d LEFT JOIN records AS r ON r.id = d.record_id
    WHERE d.id = ?
"""  # noqa: S608 -- a constant fragment, no input
DEAD_LETTER_COLUMNS = """
    x.id, x.stage, x.reason, x.code, x.message, x.attempts, x.route, x.idempotency_key,
    x.delivery_id, x.run_id, x.details, x.first_error_at, x.last_error_at, x.created_at,
    x.redriven_at, x.published_at,
    r.source AS r_source, r.stream AS r_stream, r.position AS r_position, r.key AS r_key,
    r.headers AS r_headers, r.value AS r_value, r.timestamp_ms AS r_timestamp_ms
"""
DEAD_LETTER_FROM = "FROM dead_letters AS x LEFT JOIN records AS r ON r.id = x.record_id"
SELECT_DEAD_LETTERS = f"""
    SELECT {DEAD_LETTER_COLUMNS} {DEAD_LETTER_FROM}
    WHERE (:reason IS NULL OR x.reason = :reason)
      AND (:route IS NULL OR x.route = :route)
      AND (:stage IS NULL OR x.stage = :stage)
      AND (:since IS NULL OR x.created_at >= :since)
      AND (:redriven IS NULL OR (x.redriven_at IS NOT NULL) = :redriven)
    ORDER BY x.id DESC
    LIMIT :limit
"""
SELECT_RUNS = """
    SELECT u.run_id, u.delivery_id, d.route, d.target, d.action, d.idempotency_key,
           d.event_id, u.status, u.fired_at, u.last_checked_at, u.ref
    FROM runs AS u JOIN deliveries AS d ON d.id = u.delivery_id
"""
# mark_dead / finish_run: one dead letter from a delivery row, in SQL so it is one statement.
INSERT_DEAD_LETTER_FROM_DELIVERY = """
    INSERT INTO dead_letters (stage, reason, code, message, attempts, route, idempotency_key,
                              delivery_id, run_id, record_id, details, first_error_at,
                              last_error_at, created_at)
    SELECT :stage, :reason, :code, :message, d.attempts, d.route, d.idempotency_key,
           d.id, :run_id, d.record_id, :details, COALESCE(d.first_error_at, :now), :now, :now
    FROM deliveries AS d WHERE d.id = :delivery_id
"""

# Retention: finished deliveries whose every run ended and every dead letter was redriven
# before :before. "<> 'pending'" lets SQLite walk deliveries_settled.
SELECT_PRUNABLE_DELIVERIES = """
    SELECT d.id, d.record_id FROM deliveries AS d
    WHERE d.state <> 'pending' AND d.state IN ('fired', 'dead')
      AND COALESCE(CASE d.state WHEN 'fired' THEN d.fired_at ELSE d.last_error_at END,
                   d.created_at) < :before
      AND NOT EXISTS (SELECT 1 FROM runs AS u WHERE u.delivery_id = d.id
                      AND (u.finished_at IS NULL OR u.finished_at >= :before))
      AND NOT EXISTS (SELECT 1 FROM dead_letters AS x WHERE x.delivery_id = d.id
                      AND (x.redriven_at IS NULL OR x.redriven_at >= :before))
    LIMIT :limit
"""
# Ingest dead letters (no delivery) redriven before :before.
SELECT_PRUNABLE_DEAD_LETTERS = """
    SELECT id, record_id FROM dead_letters
    WHERE delivery_id IS NULL AND redriven_at < :before
    LIMIT :limit
"""
DELETE_ORPHAN_RECORD = """
    DELETE FROM records WHERE id = ?1
      AND NOT EXISTS (SELECT 1 FROM deliveries WHERE record_id = ?1)
      AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE record_id = ?1)
"""
# Rows pruned per transaction, so ingest never waits long for the write lock.
PRUNE_CHUNK = 1000
MARK_FIRED = """
    UPDATE deliveries SET state = 'fired', attempts = attempts + 1, fired_at = ?,
           instance_id = ?, result_code = ?
    WHERE id = ? AND state = 'firing'
"""
INSERT_RUN = """
    INSERT INTO runs (run_id, delivery_id, fired_at, ref) VALUES (?, ?, ?, ?)
    ON CONFLICT (run_id, delivery_id) DO NOTHING
"""
MARK_RETRY = """
    UPDATE deliveries SET state = 'retry_wait', attempts = attempts + ?, next_attempt_at = ?,
           last_error = ?, first_error_at = COALESCE(first_error_at, ?), last_error_at = ?
    WHERE id = ? AND state = 'firing'
"""
RELEASE = """
    UPDATE deliveries SET state = 'pending',
           first_attempt_at = CASE WHEN attempts = 0 THEN NULL ELSE first_attempt_at END
    WHERE id = ? AND state = 'firing'
"""
MARK_DEAD = """
    UPDATE deliveries SET attempts = attempts + (state = 'firing'), state = 'dead',
           last_error = COALESCE(?, last_error), last_error_at = ?
    WHERE id = ? AND state IN ('pending', 'retry_wait', 'firing')
"""
FINISH_RUN = """
    UPDATE runs SET status = ?, finished_at = ?, last_checked_at = ?, error = ?
    WHERE run_id = ? AND finished_at IS NULL
"""
# A stuck run the target canceled: its delivery fires again (its attempts kept).
REFIRE = """
    UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL
    WHERE id = ? AND state = 'fired'
"""
REQUEUE = """
    UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,
           first_attempt_at = NULL, fired_at = NULL, instance_id = NULL, result_code = NULL,
           last_error = NULL, first_error_at = NULL, last_error_at = NULL
    WHERE id = ? AND state IN ('fired', 'dead')
"""
REQUEUE_WITH_KEY = """
    INSERT INTO deliveries (route, target, action, idempotency_key, payload, ordering_key,
                            event_id, record_id, created_at, next_attempt_at)
    SELECT route, target, action, ?, payload, ordering_key, event_id, record_id, ?, ?
    FROM deliveries WHERE id = ?
    ON CONFLICT (route, idempotency_key) DO NOTHING
"""
