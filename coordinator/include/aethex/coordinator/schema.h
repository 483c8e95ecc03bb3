/*
 * The platform schema (docs/schema.md) and the migration logic that applies it.
 *
 * Migrations are versioned and forward-only: migration N is applied once, in one transaction
 * that first re-checks `schema_version`, and records N in `schema_version` before COMMIT. The
 * SQL lives in src/schema.c, one migration per entry of coord_schema_migrations[], each a
 * NULL-terminated array of single SQL statements (our dqlite client and sqlite3_prepare both
 * take one statement at a time, and splitting SQL text ourselves would be fragile).
 *
 * The logic has no I/O (STYLE 10): coord_migrator_t says what to run next and is told what
 * happened; the coordinator drives it through the asynchronous dqlite client, the unit test
 * through libsqlite3. The sequence:
 *
 *     ENSURE_TABLE   CREATE TABLE IF NOT EXISTS schema_version   (idempotent, autocommit)
 *          |
 *     READ_VERSION   SELECT max(version) --- >= target ---> DONE
 *          |  v = max + 1
 *     APPLY v        ONE transaction: first coord_migrator_record_sql (version v, name, now),
 *          |         then every statement of migration v; then back to READ_VERSION
 *
 * Running the INSERT into schema_version first is the re-check inside the transaction: if
 * another node applied v since we read the version, that INSERT fails on the PRIMARY KEY
 * before any DDL runs, the whole transaction is rolled back, and the migrator reads the
 * version again. A writer holding the lock ("database is locked"), a leader change, or an
 * outcome the client cannot know (AX_EUNKNOWN) are retryable the same way: reading the
 * version again tells what happened. Anything else (an error in our own SQL) is FAILED.
 * Through the dqlite client, APPLY is one write item of coord_dqlite_write(): an item is
 * atomic, so a half-applied migration can never commit, even across a leader change.
 */
#ifndef AETHEX_COORDINATOR_SCHEMA_H
#define AETHEX_COORDINATOR_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

typedef struct coord_migration {
    int version;              /* 1, 2, 3, ... in array order */
    const char *name;         /* short description, stored in schema_version.name */
    const char *const *stmts; /* NULL-terminated; one SQL statement each, no trailing ';' */
} coord_migration_t;

/* Every migration, in order. Static data; never freed. */
extern const coord_migration_t coord_schema_migrations[];
extern const size_t coord_schema_migration_count;

/* The version the last migration brings the database to. */
int coord_schema_latest_version(void);

/* The name of the database every coordinator and aethexctl opens on the dqlite cluster. */
#define COORD_DB_NAME "aethex"

typedef enum {
    COORD_MIGRATOR_ENSURE_TABLE,
    COORD_MIGRATOR_READ_VERSION,
    COORD_MIGRATOR_APPLY,
    COORD_MIGRATOR_DONE,
    COORD_MIGRATOR_FAILED,
    COORD_MIGRATOR_STATE_COUNT
} coord_migrator_state_t;

/* The INSERT that starts every APPLY transaction; bind (version, name, applied_at_ms). */
extern const char coord_migrator_record_sql[];

/* What the driver must run next. */
typedef struct coord_migrator_step {
    coord_migrator_state_t state;
    const char *sql;                    /* ENSURE_TABLE (exec), READ_VERSION (query: one
                                         * integer); static text. NULL otherwise. */
    const coord_migration_t *migration; /* APPLY: record, then migration->stmts, atomically */
    int64_t applied_at_ms;              /* APPLY: the third parameter of the record */
} coord_migrator_step_t;

typedef struct coord_migrator {
    coord_migrator_state_t state;
    int target;  /* apply up to this version */
    int current; /* the version last read */
    int applied; /* migrations this migrator committed */
    int retries; /* retryable failures (lost races, locks, leader changes, unknown outcomes) */
} coord_migrator_t;

/* Starts a migrator that brings the database to `target` (usually the latest version).
 * Storage the caller provides; nothing to close. */
void coord_migrator_init(coord_migrator_t *m, int target);

/* Fills `step` with what to run now. `now_ms` is the wall clock (for applied_at). */
void coord_migrator_step(const coord_migrator_t *m, uint64_t now_ms, coord_migrator_step_t *step);

/* The current step succeeded. For READ_VERSION, `version` is the integer the query returned
 * (0 when the table is empty); ignored otherwise. Returns 0, or AX_EBADDATA when the database
 * reports a version newer than this binary knows (then the migrator is FAILED). */
int coord_migrator_done(coord_migrator_t *m, int64_t version);

/* The current step failed. `retryable`: a concurrent writer, a leader change or an unknown
 * outcome may explain it, so the migrator goes back to READ_VERSION (ENSURE_TABLE stays);
 * otherwise it is FAILED. */
void coord_migrator_failed(coord_migrator_t *m, int retryable);

/* Name of a state, for logs. */
const char *coord_migrator_state_name(coord_migrator_state_t s);

#endif /* AETHEX_COORDINATOR_SCHEMA_H */
