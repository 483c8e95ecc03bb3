/*
 * The read-only check for operator SQL (sql_guard.h): compile against an in-memory copy of
 * the schema under an allowlist authorizer.
 */
#include "aethex/coordinator/sql_guard.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "aethex/common/error.h"
#include "aethex/common/util.h"
#include "aethex/coordinator/schema.h"

#define ERR(code, ...)                                                                             \
    do {                                                                                           \
        snprintf(errmsg, AX_ERRMSG_LEN, __VA_ARGS__);                                              \
        rv = (code);                                                                               \
        goto out;                                                                                  \
    } while (0)

/* PRAGMAs whose argument is a table or index name: they only read, with or without it. The
 * authorizer cannot tell `PRAGMA x(v)` from `PRAGMA x = v`, which is why the PRAGMAs that
 * a value would make write are in the second list, allowed only without one. */
static const char *const read_pragmas_with_arg[] = {
    "table_info", "table_xinfo", "table_list",       "index_list",
    "index_info", "index_xinfo", "foreign_key_list", "foreign_key_check",
};
static const char *const read_pragmas_no_arg[] = {
    "schema_version", "user_version", "collation_list", "function_list", "compile_options",
};

/* Names of the authorizer's action codes that a refused statement typically hits. */
static const char *action_name(int action)
{
    switch (action) {
    case SQLITE_INSERT:
        return "INSERT";
    case SQLITE_UPDATE:
        return "UPDATE";
    case SQLITE_DELETE:
        return "DELETE";
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_VIEW:
    case SQLITE_CREATE_TEMP_TRIGGER:
    case SQLITE_CREATE_VTABLE:
        return "CREATE";
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TABLE:
    case SQLITE_DROP_TEMP_INDEX:
    case SQLITE_DROP_TEMP_VIEW:
    case SQLITE_DROP_TEMP_TRIGGER:
    case SQLITE_DROP_VTABLE:
        return "DROP";
    case SQLITE_ALTER_TABLE:
        return "ALTER";
    case SQLITE_TRANSACTION:
        return "a transaction";
    case SQLITE_SAVEPOINT:
        return "SAVEPOINT";
    case SQLITE_ATTACH:
        return "ATTACH";
    case SQLITE_DETACH:
        return "DETACH";
    case SQLITE_REINDEX:
        return "REINDEX";
    case SQLITE_ANALYZE:
        return "ANALYZE";
    default:
        return "a write";
    }
}

struct guard {
    int denied;
    char what[96];
};

static int authorize(void *data, int action, const char *a, const char *b, const char *db,
                     const char *trigger)
{
    struct guard *g = data;
    (void)db;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_PRAGMA:
        for (size_t i = 0; a && i < AX_ARRAY_SIZE(read_pragmas_with_arg); i++)
            if (strcmp(a, read_pragmas_with_arg[i]) == 0)
                return SQLITE_OK;
        for (size_t i = 0; a && !b && i < AX_ARRAY_SIZE(read_pragmas_no_arg); i++)
            if (strcmp(a, read_pragmas_no_arg[i]) == 0)
                return SQLITE_OK;
        snprintf(g->what, sizeof g->what, "PRAGMA %.40s%s", a ? a : "?", b ? " with a value" : "");
        break;
    default:
        snprintf(g->what, sizeof g->what, "%s%s%.40s", action_name(action), a ? " " : "",
                 a ? a : "");
        break;
    }
    g->denied++;
    return SQLITE_DENY;
}

static int load_schema(sqlite3 *db, char *errmsg)
{
    static const char ensure[] = "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                                 " name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT";
    if (sqlite3_exec(db, ensure, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < coord_schema_migration_count; i++)
        for (size_t k = 0; coord_schema_migrations[i].stmts[k]; k++)
            if (sqlite3_exec(db, coord_schema_migrations[i].stmts[k], NULL, NULL, NULL) !=
                SQLITE_OK)
                goto fail;
    return 0;
fail:
    snprintf(errmsg, AX_ERRMSG_LEN, "loading the schema: %.200s", sqlite3_errmsg(db));
    return sqlite3_errcode(db) == SQLITE_NOMEM ? AX_ENOMEM : AX_EIO;
}

int coord_sql_check_readonly(const char *sql, char *errmsg)
{
    int rv = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL, *next = NULL;
    struct guard g = {0};
    size_t len = strlen(sql);
    if (len > COORD_SQL_GUARD_MAX_SQL)
        ERR(AX_EMSGSIZE, "SQL longer than %d bytes", COORD_SQL_GUARD_MAX_SQL);
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        ERR(AX_ENOMEM, "sqlite3_open: out of memory");
    if ((rv = load_schema(db, errmsg)) != 0)
        goto out;
    sqlite3_set_authorizer(db, authorize, &g);
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db, sql, (int)len, &stmt, &tail);
    if (rc != SQLITE_OK) {
        if (g.denied)
            ERR(AX_EACCES, "refused: not a read (%s)", g.what);
        ERR(AX_EINVAL, "%.200s", sqlite3_errmsg(db));
    }
    if (!stmt)
        ERR(AX_EINVAL, "no statement");
    /* Exactly one statement: the rest must compile to nothing. */
    if (tail && *tail) {
        rc = sqlite3_prepare_v2(db, tail, -1, &next, NULL);
        if (rc != SQLITE_OK || next)
            ERR(AX_EINVAL, "refused: more than one statement");
    }
    if (!sqlite3_stmt_readonly(stmt))
        ERR(AX_EACCES, "refused: not a read");
    if (sqlite3_column_count(stmt) == 0)
        ERR(AX_EINVAL, "refused: the statement returns no columns");
out:
    sqlite3_finalize(next);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rv;
}
