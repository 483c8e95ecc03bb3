/*
 * coordinator.sql_guard: what aethexctl query lets through (reads) and refuses (the rest).
 */
#include "ax_test.h"

#include <string.h>

#include "aethex/coordinator/sql_guard.h"

static int check(const char *sql)
{
    char err[AX_ERRMSG_LEN] = "";
    return coord_sql_check_readonly(sql, err);
}

/* Plain reads of our tables, joins, CTEs, functions and read-only PRAGMAs pass. */
static void sql_guard__reads_pass(void **state)
{
    (void)state;
    assert_ax_err(check("SELECT * FROM users"), 0);
    assert_ax_err(check("select count(*) from channels c join users u on u.id = c.user_id"), 0);
    assert_ax_err(check("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n"
                        " WHERE x < 3) SELECT x FROM n"),
                  0);
    assert_ax_err(check("SELECT version, name FROM schema_version ORDER BY version;  -- done\n"),
                  0);
    assert_ax_err(check("PRAGMA table_info(streams)"), 0);
    assert_ax_err(check("PRAGMA user_version"), 0);
    assert_ax_err(check("SELECT name FROM sqlite_schema WHERE type = 'table'"), 0);
    assert_ax_err(check("VALUES (1), (2)"), 0);
}

/* Writes, DDL, transactions, ATTACH, PRAGMA assignments and RETURNING are refused. */
static void sql_guard__writes_are_refused(void **state)
{
    (void)state;
    assert_ax_err(check("DELETE FROM users"), AX_EACCES);
    assert_ax_err(check("DELETE FROM users RETURNING id"), AX_EACCES);
    assert_ax_err(check("INSERT INTO regions (cidr, region, family, prefix_len, range_start,"
                        " range_end) VALUES ('x', 'y', 4, 0, x'00000000', x'ffffffff')"
                        " RETURNING id"),
                  AX_EACCES);
    assert_ax_err(check("UPDATE users SET bio = 'x'"), AX_EACCES);
    assert_ax_err(check("DROP TABLE users"), AX_EACCES);
    assert_ax_err(check("CREATE TABLE t (x)"), AX_EACCES);
    assert_ax_err(check("BEGIN"), AX_EACCES);
    assert_ax_err(check("COMMIT"), AX_EACCES);
    assert_ax_err(check("ATTACH ':memory:' AS other"), AX_EACCES);
    assert_ax_err(check("PRAGMA foreign_keys = OFF"), AX_EACCES);
    assert_ax_err(check("PRAGMA query_only = 0"), AX_EACCES);
    assert_ax_err(check("PRAGMA journal_mode"), AX_EACCES);
    assert_ax_err(check("PRAGMA user_version = 7"), AX_EACCES);
    assert_ax_err(check("PRAGMA schema_version = 1"), AX_EACCES);
    assert_ax_err(check("WITH x AS (SELECT 1) DELETE FROM users"), AX_EACCES);
    assert_ax_err(check("VACUUM"), AX_EACCES);
    assert_ax_err(check("REINDEX"), AX_EACCES);
    assert_ax_err(check("ANALYZE"), AX_EACCES);
}

/* A second statement after a read is refused, even a harmless one. */
static void sql_guard__several_statements_are_refused(void **state)
{
    (void)state;
    assert_ax_err(check("SELECT 1; DELETE FROM users"), AX_EINVAL);
    assert_ax_err(check("SELECT 1; SELECT 2"), AX_EINVAL);
}

/* Broken SQL, unknown tables, empty input and oversized input are errors, not guesses. */
static void sql_guard__malformed_sql_is_an_error(void **state)
{
    (void)state;
    char err[AX_ERRMSG_LEN] = "";
    assert_ax_err(coord_sql_check_readonly("SELECT * FROM no_such_table", err), AX_EINVAL);
    assert_non_null(strstr(err, "no such table"));
    assert_ax_err(check("SELEC 1"), AX_EINVAL);
    assert_ax_err(check(""), AX_EINVAL);
    assert_ax_err(check("   -- nothing\n"), AX_EINVAL);
    static char big[COORD_SQL_GUARD_MAX_SQL + 16];
    memset(big, ' ', sizeof big - 1);
    memcpy(big, "SELECT 1", 8);
    assert_ax_err(check(big), AX_EMSGSIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sql_guard__reads_pass),
        cmocka_unit_test(sql_guard__writes_are_refused),
        cmocka_unit_test(sql_guard__several_statements_are_refused),
        cmocka_unit_test(sql_guard__malformed_sql_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
