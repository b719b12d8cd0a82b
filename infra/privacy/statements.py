"""The SQL of the personal-data keys: schema, lookups, and the writes that go with events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from infra.privacy.master import CHECK_TABLE, KEYS_TABLE

if TYPE_CHECKING:
    from infra.privacy.keys import KeyChanges

KEYS = KEYS_TABLE
SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS {KEYS} (
        record_id uuid PRIMARY KEY,
        data_subject_id uuid NOT NULL,
        wrapped_key bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        erased_at timestamptz
    )
    """,
    f"CREATE INDEX IF NOT EXISTS {KEYS}_subject ON {KEYS} (data_subject_id)",
    f"CREATE INDEX IF NOT EXISTS {KEYS}_erased ON {KEYS} (erased_at) WHERE erased_at IS NOT NULL",
    f"""
    CREATE TABLE IF NOT EXISTS {CHECK_TABLE} (
        id int PRIMARY KEY CHECK (id = 1),
        fingerprint text NOT NULL,
        probe bytea NOT NULL
    )
    """,
)
KEY_OF = f"SELECT data_subject_id, wrapped_key FROM {KEYS} WHERE record_id = %s"
# erased_at is its transaction's start, so a look back covers erasures that committed late.
ERASURES_SINCE = (
    "SELECT now() AS now, coalesce(array_agg(record_id), '{}') AS ids "
    f"FROM {KEYS} WHERE erased_at > %s::timestamptz - interval '10 seconds'"
)
# A new key of one of these records that is not stored as ours: taken by another writer, or
# not stored because its subject was erased meanwhile.
KEY_RACE = (
    f"SELECT 1 FROM unnest(%s::uuid[], %s::bytea[]) AS k(r, w) LEFT JOIN {KEYS} AS p "
    "ON p.record_id = k.r WHERE p.wrapped_key IS DISTINCT FROM k.w LIMIT 1"
)
# What an erasure reaches: the erased ids, and every record whose data subject is one of them
# (the read models redact exactly these: projections/erasure.py).
CLOSURE = (
    "WITH closure(id) AS (SELECT unnest(%s::uuid[]) UNION "
    f"SELECT record_id FROM {KEYS} WHERE data_subject_id = ANY(%s::uuid[])) "
)

Statement = tuple[str, tuple[Any, ...]]


def write_statements(changes: KeyChanges, snapshots_table: str) -> list[Statement]:
    """SQL that creates new key rows and destroys erased keys.

    Writers share-lock the rows of the subjects their new keys are about, and store no key for
    a subject erased meanwhile; an erasure first locks every row it will destroy and only then
    destroys (in a new statement, so it also sees keys committed while it waited). Erasure
    leaves a row without a key for each erased id, so no key is made for it again, and deletes
    the erased records' snapshots (sealed under the destroyed keys anyway).
    """
    statements: list[Statement] = []
    if changes.created:
        records = list(changes.created)
        subjects = [changes.created[r][0] for r in records]
        wrapped = [changes.created[r][2] for r in records]
        statements += [
            (
                f"SELECT 1 FROM {KEYS} WHERE record_id = ANY(%s) ORDER BY record_id FOR SHARE",
                (subjects,),
            ),
            (
                f"INSERT INTO {KEYS} (record_id, data_subject_id, wrapped_key) "
                "SELECT r, s, w FROM unnest(%s::uuid[], %s::uuid[], %s::bytea[]) AS k(r, s, w) "
                f"WHERE NOT EXISTS (SELECT 1 FROM {KEYS} e WHERE e.record_id = k.s "
                "AND k.s <> k.r AND e.wrapped_key IS NULL) ON CONFLICT (record_id) DO NOTHING",
                (records, subjects, wrapped),
            ),
        ]
    if changes.erased:
        erased = list(dict.fromkeys(changes.erased))
        statements += [
            (
                CLOSURE + f"SELECT 1 FROM {KEYS} WHERE record_id IN (SELECT id FROM closure) "
                "ORDER BY record_id FOR UPDATE",
                (erased, erased),
            ),
            (
                CLOSURE + f"UPDATE {KEYS} SET wrapped_key = NULL, erased_at = now() "
                "WHERE record_id IN (SELECT id FROM closure) AND wrapped_key IS NOT NULL",
                (erased, erased),
            ),
            (
                f"INSERT INTO {KEYS} (record_id, data_subject_id, wrapped_key, erased_at) "
                "SELECT s, s, NULL, now() FROM unnest(%s::uuid[]) AS s "
                # a key row of an erased id committed while this waited: destroyed too
                "ON CONFLICT (record_id) DO UPDATE SET wrapped_key = NULL, erased_at = now() "
                f"WHERE {KEYS}.wrapped_key IS NOT NULL",
                (erased,),
            ),
            (
                CLOSURE + f"DELETE FROM {snapshots_table} "
                "WHERE originator_id IN (SELECT id FROM closure)",
                (erased, erased),
            ),
        ]
    return statements
