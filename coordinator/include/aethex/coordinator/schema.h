/*
 * The platform schema (docs/schema.md) and the migration logic that applies it.
 *
 * Migrations are versioned and forward-only: migration N is applied once, in one transaction
 * that first re-checks `schema_version`, and records N in `schema_version` before COMMIT. The
 * SQL lives in src/schema.c, one migration per entry of coord_schema_migrations[], each a
 * NULL-terminated array of single SQL statements (our dqlite client and sqlite3_prepare both
 * take one statement at a time, and splitting SQL text ourselves would be fragile).
 *
 * The logic has no I/O (STYLE 10): coord_migrator_t says which statement to run next and is
 * told what happened; the coordinator drives it through the asynchronous dqlite client, and the
 * unit test drives it through libsqlite3. The sequence, for as long as work remains:
 *
 *     ENSURE_TABLE  CREATE TABLE IF NOT EXISTS schema_version (idempotent)
 *          |
 *        BEGIN --------------------------------------------.
 *          |                                               |
 *     READ_VERSION  SELECT max(version)   -- up to date --> ROLLBACK --> DONE
 *          |  (v = max + 1)
 *     STATEMENT x n  the statements of migration v
 *          |
 *     RECORD        INSERT INTO schema_version (v, name, now)
 *          |
 *        COMMIT ----> back to BEGIN for v + 1
 *
 * Any error inside the transaction moves to ROLLBACK; the driver then decides, from
 * coord_migrator_failed()'s answer, whether to retry from BEGIN (a concurrent attempt won:
 * "database is locked", a constraint on schema_version, leadership changed) or give up.
 */
#ifndef AETHEX_COORDINATOR_SCHEMA_H
#define AETHEX_COORDINATOR_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

typedef struct coord_migration {
    int version;               /* 1, 2, 3, ... in array order */
    const char *name;          /* short description, stored in schema_version.name */
    const char *const *stmts;  /* NULL-terminated; one SQL statement each, no trailing ';' */
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
    COORD_MIGRATOR_BEGIN,
    COORD_MIGRATOR_READ_VERSION,
    COORD_MIGRATOR_STATEMENT,
    COORD_MIGRATOR_RECORD,
    COORD_MIGRATOR_COMMIT,
    COORD_MIGRATOR_ROLLBACK,
    COORD_MIGRATOR_DONE,
    COORD_MIGRATOR_FAILED,
    COORD_MIGRATOR_STATE_COUNT
} coord_migrator_state_t;

/* What the driver must run next. For RECORD, bind params[0..2] (version, name, applied_at). */
typedef struct coord_migrator_step {
    coord_migrator_state_t state;
    const char *sql;        /* borrowed static text; NULL when DONE or FAILED */
    int is_query;           /* READ_VERSION: run as a query, report the one integer it returns */
    int nparams;            /* 0 or 3 */
    int64_t version;        /* param 1 (RECORD) */
    const char *name;       /* param 2 (RECORD) */
    int64_t applied_at_ms;  /* param 3 (RECORD) */
} coord_migrator_step_t;

typedef struct coord_migrator {
    coord_migrator_state_t state;
    int target;         /* apply up to this version */
    int current;        /* version read inside the current transaction */
    size_t stmt_index;  /* next statement of migration current + 1 */
    int applied;        /* migrations this migrator committed */
    int lost_races;     /* transactions rolled back because another node was first */
    int in_txn;
    int retry;          /* after ROLLBACK: 1 = back to BEGIN, 0 = FAILED */
    int up_to_date;     /* after ROLLBACK: DONE */
} coord_migrator_t;

/* Starts a migrator that brings the database to `target` (usually the latest version).
 * Storage the caller provides; nothing to close. */
void coord_migrator_init(coord_migrator_t *m, int target);

/* Fills `step` with what to run now. `now_ms` is the wall clock (for applied_at). */
void coord_migrator_step(const coord_migrator_t *m, uint64_t now_ms, coord_migrator_step_t *step);

/* The current step succeeded. For READ_VERSION, `version` is the integer the query returned
 * (0 when the table is empty); ignored otherwise. Returns 0 or AX_EBADDATA when the database
 * reports a version newer than this binary knows (then the migrator is FAILED). */
int coord_migrator_done(coord_migrator_t *m, int64_t version);

/* The current step failed. `retryable` says whether a concurrent writer or a leader change
 * may explain it. Moves to ROLLBACK if a transaction is open, else to BEGIN (retryable) or
 * FAILED. After the ROLLBACK step the migrator goes back to BEGIN or to FAILED. */
void coord_migrator_failed(coord_migrator_t *m, int retryable);

/* Name of a state, for logs. */
const char *coord_migrator_state_name(coord_migrator_state_t s);

#endif /* AETHEX_COORDINATOR_SCHEMA_H */
