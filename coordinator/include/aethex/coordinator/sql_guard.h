/*
 * Deciding, before anything is sent, that an operator's SQL only reads (aethexctl query).
 *
 * The dqlite wire protocol has no read-only flag: QUERY runs whatever it is given on the
 * leader (a `DELETE ... RETURNING` yields rows, so "it is a query" proves nothing), and a
 * BEGIN ... ROLLBACK wrapper is unsound through a client that may reconnect to a new leader
 * between requests (the ROLLBACK would land on another connection). So the check is local
 * and exact: the SQL is compiled by the same libsqlite3 the dqlite node uses (Debian's
 * 3.40), against an in-memory copy of our schema (every migration applied), with
 *   - an authorizer that allows only SQLITE_SELECT, SQLITE_READ, SQLITE_FUNCTION,
 *     SQLITE_RECURSIVE and a short list of read-only PRAGMAs without a value (everything
 *     else, including ATTACH, transactions and every write, makes compilation fail);
 *   - sqlite3_stmt_readonly() true and at least one result column;
 *   - exactly one statement (what follows it must compile to nothing: whitespace, comments).
 * A table this binary's schema does not know is refused ("no such table"), never guessed.
 */
#ifndef AETHEX_COORDINATOR_SQL_GUARD_H
#define AETHEX_COORDINATOR_SQL_GUARD_H

#include <stddef.h>

#define COORD_SQL_GUARD_MAX_SQL (64 * 1024) /* bytes of one checked statement */

/* Returns 0 when `sql` (NUL-terminated, borrowed) is one read-only statement over our
 * schema; otherwise AX_EACCES (it would write, or uses something not allowed), AX_EINVAL
 * (does not compile, several statements, no result columns), AX_EMSGSIZE, or AX_ENOMEM, with
 * the reason in `errmsg` (AX_ERRMSG_LEN bytes). Any thread; no shared state. */
int coord_sql_check_readonly(const char *sql, char *errmsg);

#endif /* AETHEX_COORDINATOR_SQL_GUARD_H */
