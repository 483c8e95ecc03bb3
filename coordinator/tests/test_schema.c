/*
 * coordinator.schema: the migrations, applied by the migrator to a plain SQLite database
 * (libsqlite3, not dqlite), check the SQL itself: that it runs, that each entry is exactly
 * one statement, and that constraints, defaults, triggers and cascades do what docs/schema.md
 * says. Two connections to one WAL file stand in for two coordinators starting at once.
 */
#include "ax_test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aethex/common/util.h"
#include "aethex/coordinator/schema.h"

struct fixture {
    sqlite3 *db;
};

static int is_retryable(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_CONSTRAINT;
}

/* Runs one statement. Returns an SQLite result code (SQLITE_OK on success); a query's last
 * row's first column goes to *version. With `record`, binds the APPLY record's parameters. */
static int run_sql(sqlite3 *db, const char *sql, const coord_migrator_step_t *record,
                   int64_t *version)
{
    sqlite3_stmt *s = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, &tail);
    if (rc != SQLITE_OK) {
        print_message("prepare failed: %s\n  in: %.200s\n", sqlite3_errmsg(db), sql);
        return rc;
    }
    /* Every entry must be exactly one statement: the dqlite client sends them one by one. */
    assert_non_null(tail);
    assert_int_equal(strspn(tail, " \t\r\n"), strlen(tail));
    if (record) {
        sqlite3_bind_int64(s, 1, record->migration->version);
        sqlite3_bind_text(s, 2, record->migration->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, record->applied_at_ms);
    }
    int64_t v = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    if (version)
        *version = v;
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
}

/* APPLY as the coordinator's write item does it: one transaction, the record first. */
static int run_apply(sqlite3 *db, const coord_migrator_step_t *st)
{
    int rc = run_sql(db, "BEGIN", NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = run_sql(db, coord_migrator_record_sql, st, NULL);
    for (size_t i = 0; rc == SQLITE_OK && st->migration->stmts[i]; i++)
        rc = run_sql(db, st->migration->stmts[i], NULL, NULL);
    if (rc == SQLITE_OK)
        rc = run_sql(db, "COMMIT", NULL, NULL);
    if (rc != SQLITE_OK)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Runs one step of `m` on `db` and tells the migrator what happened. Returns the rc. */
static int drive_one(coord_migrator_t *m, sqlite3 *db)
{
    coord_migrator_step_t st;
    coord_migrator_step(m, 1764000000000ULL, &st);
    int64_t version = 0;
    int rc =
        st.state == COORD_MIGRATOR_APPLY ? run_apply(db, &st) : run_sql(db, st.sql, NULL, &version);
    if (rc == SQLITE_OK)
        coord_migrator_done(m, version);
    else
        coord_migrator_failed(m, is_retryable(rc));
    return rc;
}

static void drive(coord_migrator_t *m, sqlite3 *db)
{
    for (int i = 0; i < 10000; i++) {
        if (m->state == COORD_MIGRATOR_DONE || m->state == COORD_MIGRATOR_FAILED)
            return;
        drive_one(m, db);
    }
    fail_msg("migrator did not finish");
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s\n  in: %s", err ? err : "?", sql);
}

/* Returns the extended result code of running `sql`. */
static int exec_rc(sqlite3 *db, const char *sql)
{
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    return sqlite3_extended_errcode(db);
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int setup(void **state)
{
    static struct fixture f;
    f.db = open_db(":memory:");
    coord_migrator_t m;
    coord_migrator_init(&m, coord_schema_latest_version());
    drive(&m, f.db);
    assert_int_equal(m.state, COORD_MIGRATOR_DONE);
    assert_int_equal(m.applied, (int)coord_schema_migration_count);
    exec_ok(f.db, "INSERT INTO users (id, supabase_id, username, email) VALUES"
                  " ('u1', 's1', 'alice', 'a@x'), ('u2', 's2', 'bob', 'b@x')");
    exec_ok(f.db,
            "INSERT INTO channels (id, user_id, name, slug) VALUES ('c1', 'u1', 'Alice', 'alice')");
    exec_ok(
        f.db,
        "INSERT INTO streams (id, channel_id, title, stream_key) VALUES ('s1', 'c1', 't', 'k1')");
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sqlite3_close(f->db);
    return 0;
}

/* Migrations bring an empty database to the latest version, recording each version once. */
static void schema__migrations_reach_latest_version(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(query_int(f->db, "SELECT MAX(version) FROM schema_version"),
                     coord_schema_latest_version());
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM schema_version"),
                     (int64_t)coord_schema_migration_count);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM schema_version WHERE applied_at = "
                                      "1764000000000"),
                     (int64_t)coord_schema_migration_count);
}

/* A second run on a migrated database applies nothing and ends DONE. */
static void schema__second_run_applies_nothing(void **state)
{
    struct fixture *f = *state;
    coord_migrator_t m;
    coord_migrator_init(&m, coord_schema_latest_version());
    drive(&m, f->db);
    assert_int_equal(m.state, COORD_MIGRATOR_DONE);
    assert_int_equal(m.applied, 0);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM schema_version"),
                     (int64_t)coord_schema_migration_count);
}

/* Every table the design names exists, and every table is documented here. */
static void schema__every_table_exists(void **state)
{
    struct fixture *f = *state;
    static const char *const tables[] = {
        "users",
        "user_preferences",
        "channels",
        "channel_stats",
        "streams",
        "followers",
        "notifications",
        "chat_messages",
        "subscription_tiers",
        "subscriptions",
        "donations",
        "vods",
        "clips",
        "clip_likes",
        "watch_history",
        "polls",
        "poll_options",
        "poll_votes",
        "edges",
        "regions",
        "stream_keys",
        "sessions",
        "moderation_actions",
        "schema_version",
    };
    char sql[256];
    for (size_t i = 0; i < AX_ARRAY_SIZE(tables); i++) {
        snprintf(sql, sizeof sql,
                 "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
                 tables[i]);
        if (query_int(f->db, sql) != 1)
            fail_msg("table %s missing", tables[i]);
    }
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'"
                                      " AND name NOT LIKE 'sqlite_%'"),
                     (int64_t)AX_ARRAY_SIZE(tables));
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
}

/* Defaults: a cuid-like id, booleans, JSON arrays and timestamps in epoch milliseconds. */
static void schema__defaults_fill_ids_flags_and_times(void **state)
{
    struct fixture *f = *state;
    exec_ok(f->db, "INSERT INTO users (supabase_id, username, email) VALUES ('s9', 'zed', 'z@x')");
    assert_int_equal(query_int(f->db, "SELECT length(id) = 25 AND substr(id, 1, 1) = 'c'"
                                      " FROM users WHERE username = 'zed'"),
                     1);
    assert_int_equal(query_int(f->db, "SELECT is_creator + verified + two_factor_enabled"
                                      " + is_online FROM users WHERE username = 'zed'"),
                     0);
    /* Created within a day of 2025-11 .. far future: a plausible epoch-ms value. */
    assert_int_equal(query_int(f->db, "SELECT created_at > 1700000000000 AND created_at < "
                                      "4102444800000 AND updated_at = created_at"
                                      " FROM users WHERE username = 'zed'"),
                     1);
    assert_int_equal(query_int(f->db, "SELECT tags = '[]' AND language = 'en' AND is_live = 0"
                                      " FROM channels WHERE id = 'c1'"),
                     1);
    assert_int_equal(query_int(f->db, "SELECT status = 'scheduled' AND processing_status ="
                                      " 'pending' FROM streams WHERE id = 's1'"),
                     1);
    exec_ok(f->db, "INSERT INTO user_preferences (user_id) VALUES ('u1')");
    assert_int_equal(query_int(f->db, "SELECT theme = 'dark' AND email_notifications = 1"
                                      " FROM user_preferences WHERE user_id = 'u1'"),
                     1);
}

/* @updatedAt: an UPDATE that does not set updated_at gets it stamped; one that does keeps it. */
static void schema__update_stamps_updated_at(void **state)
{
    struct fixture *f = *state;
    exec_ok(f->db, "UPDATE users SET updated_at = 5 WHERE id = 'u2'");
    assert_int_equal(query_int(f->db, "SELECT updated_at FROM users WHERE id = 'u2'"), 5);
    exec_ok(f->db, "UPDATE users SET bio = 'hi' WHERE id = 'u2'");
    assert_true(query_int(f->db, "SELECT updated_at FROM users WHERE id = 'u2'") > 1700000000000);
    exec_ok(f->db, "UPDATE watch_history SET last_watched_at = 0"); /* no rows: still valid */
}

/* UNIQUE constraints from @unique and @@unique refuse duplicates. */
static void schema__unique_constraints_refuse_duplicates(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(exec_rc(f->db, "INSERT INTO users (supabase_id, username, email) VALUES"
                                    " ('s3', 'alice', 'c@x')"),
                     SQLITE_CONSTRAINT_UNIQUE);
    exec_ok(f->db, "INSERT INTO followers (user_id, channel_id) VALUES ('u2', 'c1')");
    assert_int_equal(
        exec_rc(f->db, "INSERT INTO followers (user_id, channel_id) VALUES ('u2', 'c1')"),
        SQLITE_CONSTRAINT_UNIQUE);
    exec_ok(f->db, "INSERT INTO streams (channel_id, title, stream_key, scheduled_at) VALUES"
                   " ('c1', 'a', 'k2', 100)");
    assert_int_equal(exec_rc(f->db, "INSERT INTO streams (channel_id, title, stream_key,"
                                    " scheduled_at) VALUES ('c1', 'b', 'k3', 100)"),
                     SQLITE_CONSTRAINT_UNIQUE);
    exec_ok(f->db, "INSERT INTO watch_history (user_id, stream_id) VALUES ('u2', 's1')");
    assert_int_equal(exec_rc(f->db, "INSERT INTO watch_history (user_id, stream_id) VALUES"
                                    " ('u2', 's1')"),
                     SQLITE_CONSTRAINT_UNIQUE);
    exec_ok(f->db, "INSERT INTO subscription_tiers (channel_id, name, price_cents, features,"
                   " sort_order) VALUES ('c1', 'Basic', 499, '[\"ad-free\"]', 1)");
    assert_int_equal(exec_rc(f->db, "INSERT INTO subscription_tiers (channel_id, name,"
                                    " price_cents, features, sort_order) VALUES"
                                    " ('c1', 'Basic', 999, '[]', 2)"),
                     SQLITE_CONSTRAINT_UNIQUE);
}

/* CHECKs and STRICT refuse booleans other than 0/1, non-array JSON, short hashes, bad types. */
static void schema__checks_refuse_malformed_values(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(exec_rc(f->db, "UPDATE users SET is_creator = 2 WHERE id = 'u1'"),
                     SQLITE_CONSTRAINT_CHECK);
    assert_int_equal(exec_rc(f->db, "UPDATE channels SET tags = '{\"a\":1}' WHERE id = 'c1'"),
                     SQLITE_CONSTRAINT_CHECK);
    assert_int_equal(exec_rc(f->db, "UPDATE channels SET tags = 'not json' WHERE id = 'c1'"),
                     SQLITE_CONSTRAINT_CHECK);
    exec_ok(f->db, "UPDATE channels SET tags = '[\"music\",\"live\"]' WHERE id = 'c1'");
    assert_int_equal(exec_rc(f->db, "INSERT INTO stream_keys (channel_id, key_hash) VALUES"
                                    " ('c1', zeroblob(31))"),
                     SQLITE_CONSTRAINT_CHECK);
    assert_int_equal(exec_rc(f->db, "INSERT INTO stream_keys (channel_id, key_hash) VALUES"
                                    " ('c1', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')"),
                     SQLITE_CONSTRAINT_DATATYPE);
    exec_ok(f->db, "INSERT INTO stream_keys (channel_id, key_hash) VALUES ('c1', zeroblob(32))");
    assert_int_equal(exec_rc(f->db, "UPDATE streams SET viewer_count = 'many' WHERE id = 's1'"),
                     SQLITE_CONSTRAINT_DATATYPE);
    assert_int_equal(exec_rc(f->db, "INSERT INTO moderation_actions (channel_id, target_user_id,"
                                    " action) VALUES ('c1', 'u2', 'timeout')"),
                     SQLITE_CONSTRAINT_CHECK);
    exec_ok(f->db, "INSERT INTO moderation_actions (channel_id, target_user_id, action,"
                   " expires_at) VALUES ('c1', 'u2', 'timeout', 1)");
    assert_int_equal(exec_rc(f->db, "INSERT INTO regions (cidr, region, family, prefix_len,"
                                    " range_start, range_end) VALUES ('10.0.0.0/8', 'eu', 4, 8,"
                                    " x'0a000000', x'0affffffff')"),
                     SQLITE_CONSTRAINT_CHECK);
    exec_ok(f->db, "INSERT INTO regions (cidr, region, family, prefix_len, range_start,"
                   " range_end) VALUES ('10.0.0.0/8', 'eu', 4, 8, x'0a000000', x'0affffff')");
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM regions WHERE family = 4 AND"
                                      " range_start <= x'0a010203' AND range_end >= x'0a010203'"),
                     1);
}

/* A row whose parent does not exist is refused. */
static void schema__foreign_keys_refuse_orphans(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(exec_rc(f->db, "INSERT INTO channels (user_id, name, slug) VALUES"
                                    " ('nobody', 'n', 'n')"),
                     SQLITE_CONSTRAINT_FOREIGNKEY);
    assert_int_equal(exec_rc(f->db, "INSERT INTO chat_messages (stream_id, user_id, message)"
                                    " VALUES ('s1', 'nobody', 'hi')"),
                     SQLITE_CONSTRAINT_FOREIGNKEY);
}

/* Deleting a user cascades through channels, streams and everything below them. */
static void schema__deleting_a_user_cascades(void **state)
{
    struct fixture *f = *state;
    exec_ok(
        f->db,
        "INSERT INTO channel_stats (channel_id) VALUES ('c1');"
        "INSERT INTO chat_messages (stream_id, user_id, message) VALUES ('s1', 'u2', 'hi');"
        "INSERT INTO vods (id, stream_id) VALUES ('v1', 's1');"
        "INSERT INTO clips (id, vod_id, channel_id, creator_id, title, slug, video_url)"
        "  VALUES ('k1', 'v1', 'c1', 'u2', 'c', 'clip-1', '/c/1.mp4');"
        "INSERT INTO clip_likes (user_id, clip_id) VALUES ('u2', 'k1');"
        "INSERT INTO polls (id, stream_id, question) VALUES ('p1', 's1', 'q?');"
        "INSERT INTO poll_options (id, poll_id, option) VALUES ('o1', 'p1', 'yes');"
        "INSERT INTO poll_votes (option_id, user_id) VALUES ('o1', 'u2');"
        "INSERT INTO subscriptions (subscriber_id, channel_id, tier, price_cents)"
        "  VALUES ('u2', 'c1', 'basic', 499);"
        "INSERT INTO donations (donor_id, channel_id, amount_cents) VALUES ('u2', 'c1', 100);"
        "INSERT INTO notifications (user_id, channel_id, type, title)"
        "  VALUES ('u2', 'c1', 'stream_started', 'live');"
        "INSERT INTO watch_history (user_id, stream_id, vod_id) VALUES ('u2', 's1', 'v1');"
        "INSERT INTO stream_keys (channel_id, key_hash) VALUES ('c1', randomblob(32));"
        "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ('u1', randomblob(32), 1);"
        "INSERT INTO moderation_actions (channel_id, target_user_id, moderator_id, action)"
        "  VALUES ('c1', 'u2', 'u1', 'ban');");
    exec_ok(f->db, "DELETE FROM users WHERE id = 'u1'");
    static const char *const emptied[] = {
        "channels",         "channel_stats", "streams",
        "chat_messages",    "vods",          "clips",
        "clip_likes",       "polls",         "poll_options",
        "poll_votes",       "subscriptions", "donations",
        "stream_keys",      "sessions",      "moderation_actions",
        "user_preferences",
    };
    char sql[128];
    for (size_t i = 0; i < AX_ARRAY_SIZE(emptied); i++) {
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", emptied[i]);
        if (query_int(f->db, sql) != 0)
            fail_msg("%s not emptied by the cascade", emptied[i]);
    }
    /* SetNull relations keep the child and clear the reference. */
    assert_int_equal(
        query_int(f->db, "SELECT COUNT(*) FROM notifications WHERE channel_id IS NULL"), 1);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM watch_history WHERE stream_id IS NULL"
                                      " AND vod_id IS NULL"),
                     1);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM users"), 1);
}

/* Deleting a VOD keeps its clips (SetNull) and deleting an edge clears streams' origin. */
static void schema__set_null_relations_keep_children(void **state)
{
    struct fixture *f = *state;
    exec_ok(f->db,
            "INSERT INTO vods (id, stream_id) VALUES ('v1', 's1');"
            "INSERT INTO clips (id, vod_id, channel_id, creator_id, title, slug, video_url)"
            "  VALUES ('k1', 'v1', 'c1', 'u2', 'c', 'clip-1', '/c/1.mp4');"
            "INSERT INTO edges (id, name, region, rpc_address, rtmp_url, hls_base_url)"
            "  VALUES ('e1', 'edge-eu-1', 'eu', '127.0.0.1:7000', 'rtmp://e/live', 'http://e');"
            "UPDATE streams SET origin_edge_id = 'e1' WHERE id = 's1';"
            "DELETE FROM vods WHERE id = 'v1';"
            "DELETE FROM edges WHERE id = 'e1';");
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM clips WHERE vod_id IS NULL"), 1);
    assert_int_equal(query_int(f->db, "SELECT COUNT(*) FROM streams WHERE id = 's1' AND"
                                      " origin_edge_id IS NULL"),
                     1);
}

static sqlite3 *open_temp_wal(char *path)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sqlite3 *db = open_db(path);
    exec_ok(db, "PRAGMA journal_mode = WAL"); /* dqlite's mode: readers do not block writers */
    return db;
}

static void remove_temp_wal(const char *path)
{
    char side[64];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* Two coordinators that read the same version: the second to APPLY fails on the
 * schema_version PRIMARY KEY before any DDL, re-reads, and carries on from the winner's
 * version, so each version is applied exactly once. */
static void schema__racing_migrators_apply_each_version_once(void **state)
{
    (void)state;
    char path[] = "/tmp/aethex-schema-XXXXXX";
    sqlite3 *a = open_temp_wal(path), *b = open_db(path);
    coord_migrator_t ma, mb;
    coord_migrator_init(&ma, coord_schema_latest_version());
    coord_migrator_init(&mb, coord_schema_latest_version());
    /* Both ensure the table and read version 0. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(drive_one(&ma, a), SQLITE_OK);
        assert_int_equal(drive_one(&mb, b), SQLITE_OK);
    }
    assert_int_equal(ma.state, COORD_MIGRATOR_APPLY);
    assert_int_equal(mb.state, COORD_MIGRATOR_APPLY);
    assert_int_equal(drive_one(&ma, a), SQLITE_OK);                    /* A applies 1 */
    assert_int_equal(drive_one(&mb, b), SQLITE_CONSTRAINT_PRIMARYKEY); /* B lost the race */
    assert_int_equal(mb.state, COORD_MIGRATOR_READ_VERSION);
    assert_int_equal(mb.retries, 1);
    drive(&mb, b); /* B reads 1 and applies the rest */
    drive(&ma, a); /* A finds them applied */
    assert_int_equal(ma.state, COORD_MIGRATOR_DONE);
    assert_int_equal(mb.state, COORD_MIGRATOR_DONE);
    assert_int_equal(ma.applied, 1);
    assert_int_equal(mb.applied, (int)coord_schema_migration_count - 1);
    assert_int_equal(query_int(a, "SELECT COUNT(*) FROM schema_version"),
                     (int64_t)coord_schema_migration_count);
    sqlite3_close(a);
    sqlite3_close(b);
    remove_temp_wal(path);
}

/* An APPLY that meets another writer's lock ("database is locked") is retried from
 * READ_VERSION and succeeds once the lock is gone; nothing of it was left behind. */
static void schema__locked_database_is_retried(void **state)
{
    (void)state;
    char path[] = "/tmp/aethex-schema-XXXXXX";
    sqlite3 *a = open_temp_wal(path), *b = open_db(path);
    coord_migrator_t m;
    coord_migrator_init(&m, coord_schema_latest_version());
    assert_int_equal(drive_one(&m, b), SQLITE_OK); /* ensure table */
    assert_int_equal(drive_one(&m, b), SQLITE_OK); /* read 0 */
    exec_ok(a, "BEGIN IMMEDIATE");                 /* another writer holds the lock */
    assert_int_equal(drive_one(&m, b) & 0xff, SQLITE_BUSY);
    assert_int_equal(m.state, COORD_MIGRATOR_READ_VERSION);
    assert_int_equal(query_int(a, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'users'"), 0);
    exec_ok(a, "COMMIT");
    drive(&m, b);
    assert_int_equal(m.state, COORD_MIGRATOR_DONE);
    assert_int_equal(m.applied, (int)coord_schema_migration_count);
    assert_int_equal(m.retries, 1);
    sqlite3_close(a);
    sqlite3_close(b);
    remove_temp_wal(path);
}

/* A database migrated by a newer binary is refused, not touched. */
static void schema__newer_database_is_refused(void **state)
{
    (void)state;
    sqlite3 *db = open_db(":memory:");
    exec_ok(db, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at INTEGER NOT NULL) STRICT;"
                "INSERT INTO schema_version VALUES (999, 'future', 0)");
    coord_migrator_t m;
    coord_migrator_init(&m, coord_schema_latest_version());
    assert_int_equal(drive_one(&m, db), SQLITE_OK); /* ensure table */
    coord_migrator_step_t st;
    coord_migrator_step(&m, 0, &st);
    int64_t v = 0;
    assert_int_equal(run_sql(db, st.sql, NULL, &v), SQLITE_OK);
    assert_int_equal(v, 999);
    assert_ax_err(coord_migrator_done(&m, v), AX_EBADDATA);
    drive(&m, db);
    assert_int_equal(m.state, COORD_MIGRATOR_FAILED);
    assert_int_equal(m.applied, 0);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'users'"), 0);
    sqlite3_close(db);
}

/* A failure that no retry can fix rolls the transaction back and ends FAILED. */
static void schema__fatal_error_rolls_back_and_fails(void **state)
{
    (void)state;
    sqlite3 *db = open_db(":memory:");
    exec_ok(db, "CREATE TABLE users (x INTEGER)"); /* collides with migration 1 */
    coord_migrator_t m;
    coord_migrator_init(&m, coord_schema_latest_version());
    drive(&m, db);
    assert_int_equal(m.state, COORD_MIGRATOR_FAILED);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM schema_version"), 0);
    assert_int_equal(query_int(db, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'channels'"),
                     0);
    assert_string_equal(coord_migrator_state_name(m.state), "failed");
    sqlite3_close(db);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(schema__migrations_reach_latest_version),
        T(schema__second_run_applies_nothing),
        T(schema__every_table_exists),
        T(schema__defaults_fill_ids_flags_and_times),
        T(schema__update_stamps_updated_at),
        T(schema__unique_constraints_refuse_duplicates),
        T(schema__checks_refuse_malformed_values),
        T(schema__foreign_keys_refuse_orphans),
        T(schema__deleting_a_user_cascades),
        T(schema__set_null_relations_keep_children),
        cmocka_unit_test(schema__racing_migrators_apply_each_version_once),
        cmocka_unit_test(schema__locked_database_is_retried),
        cmocka_unit_test(schema__newer_database_is_refused),
        cmocka_unit_test(schema__fatal_error_rolls_back_and_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
