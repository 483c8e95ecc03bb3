/*
 * The platform schema as SQLite migrations, and the migration state machine (schema.h).
 *
 * Migration 1 is a port of /work/shared/seed/schema.prisma (the platform's data model):
 * camelCase fields become snake_case columns; String -> TEXT, Int/BigInt -> INTEGER,
 * Float -> REAL, Boolean -> INTEGER 0/1 with a CHECK, DateTime -> INTEGER milliseconds since
 * the Unix epoch (UTC), String[] -> TEXT holding a JSON array (CHECKed); @default(cuid())
 * becomes a random 25-character id ('c' + 24 hex digits); @updatedAt becomes a trigger that
 * stamps updated_at when an UPDATE does not set it itself; `order` becomes sort_order (a
 * keyword in SQL). Prisma relations become foreign keys with the same ON DELETE action
 * (Cascade or SetNull) and Prisma's default ON UPDATE CASCADE. An @@index on columns that
 * a @unique or a unique composite already leads with is not duplicated: SQLite would keep
 * two copies of the same keys in memory, and dqlite keeps the whole database in memory.
 * Migration 2 adds indexes on foreign-key columns that had none (without them, deleting a
 * user scans chat_messages). Migration 3 adds what the distributed system needs. Every
 * table is STRICT (SQLite >= 3.37; Debian 12 has 3.40): a value of the wrong type is an
 * error, as it would be in PostgreSQL. docs/schema.md describes every table.
 */
#include "aethex/coordinator/schema.h"

#include "aethex/common/error.h"
#include "aethex/common/util.h"

/* Milliseconds since the Unix epoch, from SQLite's clock (julianday has ms resolution). */
#define NOW_MS "(CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER))"
/* Prisma's cuid(): 25 characters starting with 'c'; here 96 random bits in hex. */
#define NEW_ID "('c' || lower(hex(randomblob(12))))"

#define ID_COL "id TEXT PRIMARY KEY NOT NULL DEFAULT " NEW_ID
#define BOOL_COL(c, d) c " INTEGER NOT NULL DEFAULT " #d " CHECK (" c " IN (0, 1))"
#define JSON_ARRAY_CHECK(c) " CHECK (json_valid(" c ") AND json_type(" c ") = 'array')"
#define JSON_ARRAY_COL(c) c " TEXT NOT NULL DEFAULT '[]'" JSON_ARRAY_CHECK(c)
#define TIME_NOW_COL(c) c " INTEGER NOT NULL DEFAULT " NOW_MS
#define FK(t, action) " REFERENCES " t " (id) ON DELETE " action " ON UPDATE CASCADE"
#define SHA256_COL(c)                                                                              \
    c " BLOB NOT NULL UNIQUE CHECK (typeof(" c ") = 'blob' AND length(" c ") = 32)"

/* Prisma's @updatedAt: stamp `col` unless the UPDATE set it (recursive_triggers is off). */
/* clang-format off */
#define TOUCH_TRIGGER(t, col)                                                               \
    "CREATE TRIGGER " t "_touch_" col " AFTER UPDATE ON " t " FOR EACH ROW WHEN NEW." col      \
    " = OLD." col " BEGIN UPDATE " t " SET " col " = " NOW_MS " WHERE id = NEW.id; END"
/* clang-format on */

/* The SQL below is laid out by hand, one column per line: keep the formatter away. */
/* clang-format off */

/* --- 1: the platform data model (schema.prisma) ------------------------------------------- */
static const char *const m1_prisma_port[] = {
    /* ===== USERS & AUTHENTICATION ===== */
    "CREATE TABLE users ("
    "  " ID_COL ","
    "  supabase_id TEXT NOT NULL UNIQUE,"
    "  username TEXT NOT NULL UNIQUE,"
    "  email TEXT NOT NULL UNIQUE,"
    "  display_name TEXT,"
    "  bio TEXT,"
    "  avatar_url TEXT,"
    "  banner_url TEXT,"
    "  " BOOL_COL("is_creator", 0) ","
    "  " BOOL_COL("verified", 0) ","
    "  " BOOL_COL("two_factor_enabled", 0) ","
    "  " BOOL_COL("is_online", 0) ","
    "  last_seen INTEGER,"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at")
    ") STRICT",
    /* @@index([username]), ([email]), ([supabaseId]): covered by their UNIQUE indexes. */
    "CREATE INDEX users_is_creator_idx ON users (is_creator)",
    TOUCH_TRIGGER("users", "updated_at"),

    "CREATE TABLE user_preferences ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL UNIQUE" FK("users", "CASCADE") ","
    "  " BOOL_COL("email_notifications", 1) ","
    "  " BOOL_COL("push_notifications", 1) ","
    "  " BOOL_COL("show_online_status", 1) ","
    "  " BOOL_COL("allow_direct_messages", 1) ","
    "  theme TEXT NOT NULL DEFAULT 'dark',"
    "  language TEXT NOT NULL DEFAULT 'en',"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at")
    ") STRICT",
    TOUCH_TRIGGER("user_preferences", "updated_at"),

    /* ===== CHANNELS & STREAMING ===== */
    "CREATE TABLE channels ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  name TEXT NOT NULL UNIQUE,"
    "  slug TEXT NOT NULL UNIQUE,"
    "  description TEXT,"
    "  category TEXT,"
    "  " JSON_ARRAY_COL("tags") ","
    "  language TEXT NOT NULL DEFAULT 'en',"
    "  thumbnail_url TEXT,"
    "  banner_url TEXT,"
    "  " BOOL_COL("is_live", 0) ","
    "  total_views INTEGER NOT NULL DEFAULT 0,"
    "  total_followers INTEGER NOT NULL DEFAULT 0,"
    "  total_subscribers INTEGER NOT NULL DEFAULT 0,"
    "  " BOOL_COL("is_suspended", 0) ","
    "  suspension_reason TEXT,"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at")
    ") STRICT",
    "CREATE INDEX channels_user_id_idx ON channels (user_id)",
    /* @@index([slug]): covered by UNIQUE. */
    "CREATE INDEX channels_category_idx ON channels (category)",
    TOUCH_TRIGGER("channels", "updated_at"),

    "CREATE TABLE channel_stats ("
    "  " ID_COL ","
    "  channel_id TEXT NOT NULL UNIQUE" FK("channels", "CASCADE") ","
    "  peak_viewers INTEGER NOT NULL DEFAULT 0,"
    "  peak_viewer_date INTEGER,"
    "  total_revenue INTEGER NOT NULL DEFAULT 0,"
    "  total_donations INTEGER NOT NULL DEFAULT 0,"
    "  total_subscribers_revenue INTEGER NOT NULL DEFAULT 0,"
    "  avg_chat_messages_per_stream INTEGER NOT NULL DEFAULT 0,"
    "  avg_view_duration INTEGER NOT NULL DEFAULT 0,"
    "  bounce_rate REAL NOT NULL DEFAULT 0.0,"
    "  total_stream_hours INTEGER NOT NULL DEFAULT 0,"
    "  total_clips INTEGER NOT NULL DEFAULT 0,"
    "  " TIME_NOW_COL("last_updated")
    ") STRICT",
    /* @@index([channelId]): covered by UNIQUE. */
    TOUCH_TRIGGER("channel_stats", "last_updated"),

    "CREATE TABLE streams ("
    "  " ID_COL ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  title TEXT NOT NULL,"
    "  description TEXT,"
    "  status TEXT NOT NULL DEFAULT 'scheduled',"
    "  stream_key TEXT NOT NULL UNIQUE,"
    "  hls_url TEXT,"
    "  rtmp_ingest_url TEXT,"
    "  thumbnail_url TEXT,"
    "  viewer_count INTEGER NOT NULL DEFAULT 0,"
    "  peak_viewers INTEGER NOT NULL DEFAULT 0,"
    "  unique_viewers INTEGER NOT NULL DEFAULT 0,"
    "  scheduled_at INTEGER,"
    "  started_at INTEGER,"
    "  ended_at INTEGER,"
    "  duration_seconds INTEGER,"
    "  category TEXT,"
    "  " JSON_ARRAY_COL("tags") ","
    "  language TEXT,"
    "  " BOOL_COL("is_archived", 0) ","
    "  archive_url TEXT,"
    "  processing_status TEXT NOT NULL DEFAULT 'pending',"
    "  " BOOL_COL("is_mature", 0) ","
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at") ","
    "  UNIQUE (channel_id, scheduled_at)"
    ") STRICT",
    /* @@index([channelId]): covered by UNIQUE (channel_id, scheduled_at). */
    "CREATE INDEX streams_status_idx ON streams (status)",
    TOUCH_TRIGGER("streams", "updated_at"),

    /* ===== SOCIAL FEATURES ===== */
    "CREATE TABLE followers ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  " BOOL_COL("notification_enabled", 1) ","
    "  " TIME_NOW_COL("follow_date") ","
    "  UNIQUE (user_id, channel_id)"
    ") STRICT",
    "CREATE INDEX followers_channel_id_idx ON followers (channel_id)",
    "CREATE INDEX followers_follow_date_idx ON followers (follow_date)",

    /* ===== NOTIFICATIONS ===== */
    "CREATE TABLE notifications ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  channel_id TEXT" FK("channels", "SET NULL") ","
    "  type TEXT NOT NULL,"
    "  title TEXT NOT NULL,"
    "  message TEXT,"
    "  data TEXT,"
    "  " BOOL_COL("read", 0) ","
    "  read_at INTEGER,"
    "  " TIME_NOW_COL("created_at")
    ") STRICT",
    "CREATE INDEX notifications_user_id_idx ON notifications (user_id)",
    "CREATE INDEX notifications_read_idx ON notifications (read)",
    "CREATE INDEX notifications_created_at_idx ON notifications (created_at)",

    /* ===== CHAT & MODERATION ===== */
    "CREATE TABLE chat_messages ("
    "  " ID_COL ","
    "  stream_id TEXT NOT NULL" FK("streams", "CASCADE") ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  message TEXT NOT NULL,"
    "  " JSON_ARRAY_COL("badges") ","
    "  " BOOL_COL("is_deleted", 0) ","
    "  deleted_reason TEXT,"
    "  " TIME_NOW_COL("created_at")
    ") STRICT",
    "CREATE INDEX chat_messages_stream_id_idx ON chat_messages (stream_id)",
    "CREATE INDEX chat_messages_created_at_idx ON chat_messages (created_at)",

    /* ===== MONETIZATION ===== */
    /* The Prisma model declares channelId without a relation, so there is no foreign key. */
    "CREATE TABLE subscription_tiers ("
    "  " ID_COL ","
    "  channel_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  description TEXT,"
    "  price_cents INTEGER NOT NULL,"
    "  features TEXT NOT NULL" JSON_ARRAY_CHECK("features") ","
    "  sort_order INTEGER NOT NULL,"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at") ","
    "  UNIQUE (channel_id, name)"
    ") STRICT",
    /* @@index([channelId]): covered by UNIQUE (channel_id, name). */
    TOUCH_TRIGGER("subscription_tiers", "updated_at"),

    "CREATE TABLE subscriptions ("
    "  " ID_COL ","
    "  subscriber_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  tier TEXT NOT NULL,"
    "  price_cents INTEGER NOT NULL,"
    "  stripe_subscription_id TEXT,"
    "  status TEXT NOT NULL DEFAULT 'active',"
    "  " BOOL_COL("auto_renew", 1) ","
    "  " TIME_NOW_COL("started_at") ","
    "  renews_at INTEGER,"
    "  ended_at INTEGER,"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at") ","
    "  UNIQUE (subscriber_id, channel_id)"
    ") STRICT",
    "CREATE INDEX subscriptions_channel_id_idx ON subscriptions (channel_id)",
    "CREATE INDEX subscriptions_status_idx ON subscriptions (status)",
    TOUCH_TRIGGER("subscriptions", "updated_at"),

    /* streamId is a plain column in the Prisma model (no relation), so no foreign key. */
    "CREATE TABLE donations ("
    "  " ID_COL ","
    "  donor_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  stream_id TEXT,"
    "  amount_cents INTEGER NOT NULL,"
    "  currency TEXT NOT NULL DEFAULT 'USD',"
    "  message TEXT,"
    "  stripe_charge_id TEXT,"
    "  status TEXT NOT NULL DEFAULT 'completed',"
    "  " TIME_NOW_COL("created_at")
    ") STRICT",
    "CREATE INDEX donations_channel_id_idx ON donations (channel_id)",
    "CREATE INDEX donations_status_idx ON donations (status)",
    "CREATE INDEX donations_created_at_idx ON donations (created_at)",

    /* ===== CONTENT (VOD & CLIPS) ===== */
    "CREATE TABLE vods ("
    "  " ID_COL ","
    "  stream_id TEXT NOT NULL UNIQUE" FK("streams", "CASCADE") ","
    "  title TEXT,"
    "  description TEXT,"
    "  thumbnail_url TEXT,"
    "  video_url TEXT,"
    "  duration_seconds INTEGER,"
    "  views INTEGER NOT NULL DEFAULT 0,"
    "  " BOOL_COL("is_public", 1) ","
    "  processing_status TEXT NOT NULL DEFAULT 'processing',"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at")
    ") STRICT",
    "CREATE INDEX vods_processing_status_idx ON vods (processing_status)",
    TOUCH_TRIGGER("vods", "updated_at"),

    "CREATE TABLE clips ("
    "  " ID_COL ","
    "  vod_id TEXT" FK("vods", "SET NULL") ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  creator_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  title TEXT NOT NULL,"
    "  slug TEXT NOT NULL UNIQUE,"
    "  description TEXT,"
    "  thumbnail_url TEXT,"
    "  video_url TEXT NOT NULL UNIQUE,"
    "  start_seconds INTEGER,"
    "  duration_seconds INTEGER,"
    "  views INTEGER NOT NULL DEFAULT 0,"
    "  likes INTEGER NOT NULL DEFAULT 0,"
    "  " BOOL_COL("is_public", 1) ","
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at")
    ") STRICT",
    "CREATE INDEX clips_channel_id_idx ON clips (channel_id)",
    "CREATE INDEX clips_creator_id_idx ON clips (creator_id)",
    /* @@index([slug]): covered by UNIQUE. */
    TOUCH_TRIGGER("clips", "updated_at"),

    "CREATE TABLE clip_likes ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  clip_id TEXT NOT NULL" FK("clips", "CASCADE") ","
    "  " TIME_NOW_COL("created_at") ","
    "  UNIQUE (user_id, clip_id)"
    ") STRICT",
    "CREATE INDEX clip_likes_clip_id_idx ON clip_likes (clip_id)",

    /* ===== VIEWING & WATCH HISTORY ===== */
    "CREATE TABLE watch_history ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  stream_id TEXT" FK("streams", "SET NULL") ","
    "  vod_id TEXT" FK("vods", "SET NULL") ","
    "  watched_seconds INTEGER,"
    "  total_seconds INTEGER,"
    "  " TIME_NOW_COL("started_at") ","
    "  " TIME_NOW_COL("last_watched_at") ","
    "  UNIQUE (user_id, stream_id),"
    "  UNIQUE (user_id, vod_id)"
    ") STRICT",
    /* @@index([userId]): covered by both UNIQUE composites. */
    TOUCH_TRIGGER("watch_history", "last_watched_at"),

    /* ===== INTERACTIONS & ENGAGEMENT ===== */
    "CREATE TABLE polls ("
    "  " ID_COL ","
    "  stream_id TEXT NOT NULL" FK("streams", "CASCADE") ","
    "  question TEXT NOT NULL,"
    "  duration_seconds INTEGER,"
    "  status TEXT NOT NULL DEFAULT 'active',"
    "  " TIME_NOW_COL("created_at") ","
    "  ended_at INTEGER"
    ") STRICT",
    "CREATE INDEX polls_stream_id_idx ON polls (stream_id)",

    "CREATE TABLE poll_options ("
    "  " ID_COL ","
    "  poll_id TEXT NOT NULL" FK("polls", "CASCADE") ","
    "  option TEXT NOT NULL,"
    "  vote_count INTEGER NOT NULL DEFAULT 0,"
    "  sort_order INTEGER NOT NULL DEFAULT 0"
    ") STRICT",
    "CREATE INDEX poll_options_poll_id_idx ON poll_options (poll_id)",

    "CREATE TABLE poll_votes ("
    "  " ID_COL ","
    "  option_id TEXT NOT NULL" FK("poll_options", "CASCADE") ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  " TIME_NOW_COL("created_at") ","
    "  UNIQUE (user_id, option_id)"
    ") STRICT",
    "CREATE INDEX poll_votes_option_id_idx ON poll_votes (option_id)",
    NULL,
};

/* --- 2: indexes for cascades ----------------------------------------------------------------
 * A foreign key whose child column has no index makes every delete of a parent scan the child
 * table (SQLite "foreignkeys.html", section 3). These are the child columns the Prisma model
 * left unindexed. */
static const char *const m2_fk_indexes[] = {
    "CREATE INDEX notifications_channel_id_idx ON notifications (channel_id)",
    "CREATE INDEX chat_messages_user_id_idx ON chat_messages (user_id)",
    "CREATE INDEX donations_donor_id_idx ON donations (donor_id)",
    "CREATE INDEX clips_vod_id_idx ON clips (vod_id)",
    "CREATE INDEX watch_history_stream_id_idx ON watch_history (stream_id)",
    "CREATE INDEX watch_history_vod_id_idx ON watch_history (vod_id)",
    NULL,
};

/* --- 3: what the distributed system needs --------------------------------------------------- */
static const char *const m3_platform[] = {
    /* Edges register and heartbeat; the coordinators' routing view is loaded from here. */
    "CREATE TABLE edges ("
    "  " ID_COL ","
    "  name TEXT NOT NULL UNIQUE,"
    "  region TEXT NOT NULL,"
    "  rpc_address TEXT NOT NULL,"
    "  rtmp_url TEXT NOT NULL,"
    "  hls_base_url TEXT NOT NULL,"
    "  capacity_viewers INTEGER NOT NULL DEFAULT 0 CHECK (capacity_viewers >= 0),"
    "  status TEXT NOT NULL DEFAULT 'up' CHECK (status IN ('up', 'draining', 'down')),"
    "  viewers INTEGER NOT NULL DEFAULT 0 CHECK (viewers >= 0),"
    "  live_streams INTEGER NOT NULL DEFAULT 0 CHECK (live_streams >= 0),"
    "  last_heartbeat_at INTEGER,"
    "  " TIME_NOW_COL("created_at") ","
    "  " TIME_NOW_COL("updated_at")
    ") STRICT",
    "CREATE INDEX edges_region_idx ON edges (region)",
    TOUCH_TRIGGER("edges", "updated_at"),

    /* CIDR -> region. range_start/range_end are the first and last address of the block in
     * network byte order (4 or 16 bytes), so a lookup is a range scan on one index:
     * WHERE family = ? AND range_start <= ?addr ORDER BY range_start DESC, and then
     * range_end >= ?addr (memcmp order is numeric order for equal-length big-endian bytes). */
    "CREATE TABLE regions ("
    "  id INTEGER PRIMARY KEY,"
    "  cidr TEXT NOT NULL UNIQUE,"
    "  region TEXT NOT NULL,"
    "  family INTEGER NOT NULL CHECK (family IN (4, 6)),"
    "  prefix_len INTEGER NOT NULL"
    "    CHECK (prefix_len >= 0 AND prefix_len <= (CASE family WHEN 4 THEN 32 ELSE 128 END)),"
    "  range_start BLOB NOT NULL,"
    "  range_end BLOB NOT NULL,"
    "  " TIME_NOW_COL("created_at") ","
    "  CHECK (typeof(range_start) = 'blob' AND typeof(range_end) = 'blob'),"
    "  CHECK (length(range_start) = (CASE family WHEN 4 THEN 4 ELSE 16 END)),"
    "  CHECK (length(range_end) = length(range_start) AND range_end >= range_start)"
    ") STRICT",
    "CREATE INDEX regions_lookup_idx ON regions (family, range_start)",
    "CREATE INDEX regions_region_idx ON regions (region)",

    /* Publish secrets: only SHA-256(key) is stored; a key is revoked, never deleted, so
     * that the audit trail of who published with which key survives. */
    "CREATE TABLE stream_keys ("
    "  " ID_COL ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  " SHA256_COL("key_hash") ","
    "  label TEXT,"
    "  " TIME_NOW_COL("created_at") ","
    "  last_used_at INTEGER,"
    "  revoked_at INTEGER"
    ") STRICT",
    "CREATE INDEX stream_keys_channel_id_idx ON stream_keys (channel_id)",

    /* Login sessions: only SHA-256(token) is stored. */
    "CREATE TABLE sessions ("
    "  " ID_COL ","
    "  user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  " SHA256_COL("token_hash") ","
    "  " TIME_NOW_COL("created_at") ","
    "  expires_at INTEGER NOT NULL,"
    "  last_seen_at INTEGER,"
    "  user_agent TEXT,"
    "  ip TEXT"
    ") STRICT",
    "CREATE INDEX sessions_user_id_idx ON sessions (user_id)",
    "CREATE INDEX sessions_expires_at_idx ON sessions (expires_at)",

    /* Bans and timeouts per channel. A timeout has expires_at; a ban has none. Lifting one
     * sets revoked_at (kept for the audit trail). */
    "CREATE TABLE moderation_actions ("
    "  " ID_COL ","
    "  channel_id TEXT NOT NULL" FK("channels", "CASCADE") ","
    "  target_user_id TEXT NOT NULL" FK("users", "CASCADE") ","
    "  moderator_id TEXT" FK("users", "SET NULL") ","
    "  action TEXT NOT NULL CHECK (action IN ('ban', 'timeout')),"
    "  reason TEXT,"
    "  " TIME_NOW_COL("created_at") ","
    "  expires_at INTEGER,"
    "  revoked_at INTEGER,"
    "  CHECK ((action = 'timeout') = (expires_at IS NOT NULL))"
    ") STRICT",
    "CREATE INDEX moderation_actions_channel_target_idx"
    " ON moderation_actions (channel_id, target_user_id)",
    "CREATE INDEX moderation_actions_target_user_id_idx ON moderation_actions (target_user_id)",
    "CREATE INDEX moderation_actions_moderator_id_idx ON moderation_actions (moderator_id)",

    /* The edge a live stream is published to (its origin for relays). */
    "ALTER TABLE streams ADD COLUMN origin_edge_id TEXT" FK("edges", "SET NULL"),
    "CREATE INDEX streams_origin_edge_id_idx ON streams (origin_edge_id)",
    /* Local accounts: an argon2id encoded hash (libsodium crypto_pwhash_str). */
    "ALTER TABLE users ADD COLUMN password_hash TEXT",
    NULL,
};

/* clang-format on */

const coord_migration_t coord_schema_migrations[] = {
    {1, "platform data model (schema.prisma port)", m1_prisma_port},
    {2, "indexes on foreign-key columns", m2_fk_indexes},
    {3, "edges, regions, stream_keys, sessions, moderation_actions", m3_platform},
};
const size_t coord_schema_migration_count = AX_ARRAY_SIZE(coord_schema_migrations);

int coord_schema_latest_version(void)
{
    return coord_schema_migrations[coord_schema_migration_count - 1].version;
}

/* --- the migrator ------------------------------------------------------------------------ */

static const char sql_ensure_table[] = "CREATE TABLE IF NOT EXISTS schema_version ("
                                       "  version INTEGER PRIMARY KEY,"
                                       "  name TEXT NOT NULL,"
                                       "  applied_at INTEGER NOT NULL"
                                       ") STRICT";
static const char sql_read_version[] = "SELECT COALESCE(MAX(version), 0) FROM schema_version";
const char coord_migrator_record_sql[] =
    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)";

static const char *const state_names[COORD_MIGRATOR_STATE_COUNT] = {
    [COORD_MIGRATOR_ENSURE_TABLE] = "ensure_table",
    [COORD_MIGRATOR_READ_VERSION] = "read_version",
    [COORD_MIGRATOR_APPLY] = "apply",
    [COORD_MIGRATOR_DONE] = "done",
    [COORD_MIGRATOR_FAILED] = "failed",
};

const char *coord_migrator_state_name(coord_migrator_state_t s)
{
    if ((int)s < 0 || s >= COORD_MIGRATOR_STATE_COUNT)
        return "unknown";
    return state_names[s];
}

void coord_migrator_init(coord_migrator_t *m, int target)
{
    AX_PRE(target >= 0 && target <= coord_schema_latest_version());
    *m = (coord_migrator_t){.state = COORD_MIGRATOR_ENSURE_TABLE, .target = target};
}

void coord_migrator_step(const coord_migrator_t *m, uint64_t now_ms, coord_migrator_step_t *step)
{
    *step = (coord_migrator_step_t){.state = m->state};
    switch (m->state) {
    case COORD_MIGRATOR_ENSURE_TABLE:
        step->sql = sql_ensure_table;
        break;
    case COORD_MIGRATOR_READ_VERSION:
        step->sql = sql_read_version;
        break;
    case COORD_MIGRATOR_APPLY:
        /* current < target <= latest, and versions are 1..N in array order. */
        step->migration = &coord_schema_migrations[m->current];
        step->applied_at_ms = (int64_t)now_ms;
        break;
    case COORD_MIGRATOR_DONE:
    case COORD_MIGRATOR_FAILED:
    case COORD_MIGRATOR_STATE_COUNT:
        break;
    }
}

int coord_migrator_done(coord_migrator_t *m, int64_t version)
{
    switch (m->state) {
    case COORD_MIGRATOR_ENSURE_TABLE:
        m->state = COORD_MIGRATOR_READ_VERSION;
        break;
    case COORD_MIGRATOR_READ_VERSION:
        if (version < 0 || version > coord_schema_latest_version()) {
            /* A newer binary migrated this database (or the table holds garbage): refuse to
             * run against it rather than guess. */
            m->state = COORD_MIGRATOR_FAILED;
            return AX_EBADDATA;
        }
        m->current = (int)version;
        m->state = m->current >= m->target ? COORD_MIGRATOR_DONE : COORD_MIGRATOR_APPLY;
        break;
    case COORD_MIGRATOR_APPLY:
        m->applied++;
        m->state = COORD_MIGRATOR_READ_VERSION;
        break;
    case COORD_MIGRATOR_DONE:
    case COORD_MIGRATOR_FAILED:
    case COORD_MIGRATOR_STATE_COUNT:
        AX_PRE(!"coord_migrator_done after the end");
    }
    return 0;
}

void coord_migrator_failed(coord_migrator_t *m, int retryable)
{
    AX_PRE(m->state == COORD_MIGRATOR_ENSURE_TABLE || m->state == COORD_MIGRATOR_READ_VERSION ||
           m->state == COORD_MIGRATOR_APPLY);
    if (!retryable) {
        m->state = COORD_MIGRATOR_FAILED;
        return;
    }
    m->retries++;
    if (m->state != COORD_MIGRATOR_ENSURE_TABLE)
        m->state = COORD_MIGRATOR_READ_VERSION;
}
