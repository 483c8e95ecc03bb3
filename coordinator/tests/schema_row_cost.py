#!/usr/bin/env python3
"""Measures what one typical row of each table costs in the database file (= in memory: dqlite
keeps the whole database in memory, page for page), table b-tree plus every index, for
docs/schema.md.

Input: the schema as a running coordinator reports it:
    aethexctl --json query "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL
                            ORDER BY rowid" > schema.json
    python3 coordinator/tests/schema_row_cost.py schema.json

Each table gets N rows of typical values (sizes chosen per column below, e.g. a 25-character
id, a 60-byte URL, a 90-byte chat message); the cost is (pages after - pages before) * 4096 / N
with dqlite's 4096-byte pages. Foreign keys are off during the measurement (rows point at
made-up parents), which does not change the storage.
"""
import json
import random
import sqlite3
import string
import sys

N = 5000
rnd = random.Random(42)


def s(n):
    return "".join(rnd.choice(string.ascii_lowercase) for _ in range(n))


def cid():
    return "c" + "".join(rnd.choice("0123456789abcdef") for _ in range(24))


NOW = 1764000000000


def t():
    return NOW + rnd.randrange(10**9)


def url():
    return "https://cdn.example.test/" + s(35)


ROWS = {
    "users": lambda i: dict(id=cid(), supabase_id=f"local:{s(30)}{i}", username=f"{s(10)}{i}",
                            email=f"{s(12)}{i}@example.test", display_name=s(14), bio=s(80),
                            avatar_url=url(), last_seen=t(), created_at=t(), updated_at=t(),
                            password_hash="$argon2id$v=19$m=65536,t=2,p=1$" + s(22) + "$" + s(43)),
    "user_preferences": lambda i: dict(id=cid(), user_id=cid(), created_at=t(), updated_at=t()),
    "channels": lambda i: dict(id=cid(), user_id=cid(), name=f"{s(12)}{i}", slug=f"{s(12)}{i}",
                               description=s(120), category="gaming", tags='["fps","en"]',
                               thumbnail_url=url(), created_at=t(), updated_at=t(),
                               total_views=rnd.randrange(10**6)),
    "channel_stats": lambda i: dict(id=cid(), channel_id=cid(), peak_viewers=1234,
                                    peak_viewer_date=t(), total_revenue=10**6, last_updated=t()),
    "streams": lambda i: dict(id=cid(), channel_id=cid(), title=s(40), stream_key=f"{s(20)}{i}",
                              hls_url=url(), status="ended", started_at=t(), ended_at=t(),
                              duration_seconds=7200, category="gaming", tags='["fps"]',
                              viewer_count=0, peak_viewers=800, unique_viewers=5000,
                              created_at=t(), updated_at=t(), origin_edge_id=cid()),
    "followers": lambda i: dict(id=cid(), user_id=cid(), channel_id=cid(), follow_date=t()),
    "notifications": lambda i: dict(id=cid(), user_id=cid(), channel_id=cid(),
                                    type="stream_started", title=s(30), message=s(60),
                                    data='{"stream":"' + cid() + '"}', created_at=t()),
    "chat_messages": lambda i: dict(id=cid(), stream_id=cid(), user_id=cid(), message=s(90),
                                    badges='["subscriber"]', created_at=t()),
    "subscription_tiers": lambda i: dict(id=cid(), channel_id=cid(), name=f"tier{i}",
                                         description=s(60), price_cents=499,
                                         features='["ad-free","emotes"]', sort_order=1,
                                         created_at=t(), updated_at=t()),
    "subscriptions": lambda i: dict(id=cid(), subscriber_id=cid(), channel_id=cid(),
                                    tier="premium", price_cents=999,
                                    stripe_subscription_id="sub_" + s(24), started_at=t(),
                                    renews_at=t(), created_at=t(), updated_at=t()),
    "donations": lambda i: dict(id=cid(), donor_id=cid(), channel_id=cid(), stream_id=cid(),
                                amount_cents=500, message=s(50), stripe_charge_id="ch_" + s(24),
                                created_at=t()),
    "vods": lambda i: dict(id=cid(), stream_id=cid(), title=s(40), thumbnail_url=url(),
                           video_url=url(), duration_seconds=7200, views=100, created_at=t(),
                           updated_at=t()),
    "clips": lambda i: dict(id=cid(), vod_id=cid(), channel_id=cid(), creator_id=cid(),
                            title=s(30), slug=f"{s(16)}{i}", thumbnail_url=url(),
                            video_url=url() + str(i), start_seconds=600, duration_seconds=30,
                            created_at=t(), updated_at=t()),
    "clip_likes": lambda i: dict(id=cid(), user_id=cid(), clip_id=cid(), created_at=t()),
    "watch_history": lambda i: dict(id=cid(), user_id=cid(), stream_id=cid(), vod_id=None,
                                    watched_seconds=1800, total_seconds=7200, started_at=t(),
                                    last_watched_at=t()),
    "polls": lambda i: dict(id=cid(), stream_id=cid(), question=s(50), duration_seconds=120,
                            created_at=t()),
    "poll_options": lambda i: dict(id=cid(), poll_id=cid(), option=s(15), vote_count=10,
                                   sort_order=1),
    "poll_votes": lambda i: dict(id=cid(), option_id=cid(), user_id=cid(), created_at=t()),
    "edges": lambda i: dict(id=cid(), name=f"edge-eu-{i}", region="eu",
                            rpc_address="10.0.0.1:7000", rtmp_url="rtmp://edge-eu-1/live",
                            hls_base_url="https://edge-eu-1.example.test", capacity_viewers=5000,
                            viewers=1200, live_streams=30, last_heartbeat_at=t(),
                            created_at=t(), updated_at=t()),
    "regions": lambda i: dict(cidr=f"10.{i // 256 % 256}.{i % 256}.0/24", region="eu",
                              family=4, prefix_len=24,
                              range_start=bytes([10, i // 256 % 256, i % 256, 0]),
                              range_end=bytes([10, i // 256 % 256, i % 256, 255]),
                              created_at=t()),
    "stream_keys": lambda i: dict(id=cid(), channel_id=cid(), key_hash=rnd.randbytes(32),
                                  label="obs", created_at=t(), last_used_at=t()),
    "sessions": lambda i: dict(id=cid(), user_id=cid(), token_hash=rnd.randbytes(32),
                               created_at=t(), expires_at=t(), last_seen_at=t(),
                               user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
                               ip="203.0.113.7"),
    "moderation_actions": lambda i: dict(id=cid(), channel_id=cid(), target_user_id=cid(),
                                         moderator_id=cid(), action="timeout", reason=s(30),
                                         created_at=t(), expires_at=t()),
    "schema_version": lambda i: dict(version=i + 1, name=s(40), applied_at=t()),
}


def main():
    schema = json.load(open(sys.argv[1]))["rows"]
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA page_size = 4096")
    for typ, name, sql in schema:
        if typ in ("table", "index", "trigger"):
            db.execute(sql)
    db.execute("PRAGMA foreign_keys = OFF")
    tables = [name for typ, name, _ in schema if typ == "table"]
    print("| table | bytes per row (typical) |")
    print("| --- | ---: |")
    for name in tables:
        gen = ROWS.get(name)
        if not gen:
            print(f"| {name} | (no generator) |")
            continue
        before = db.execute("PRAGMA page_count").fetchone()[0]
        for i in range(N):
            row = gen(i)
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO {name} ({cols}) VALUES ({marks})", list(row.values()))
        db.commit()
        after = db.execute("PRAGMA page_count").fetchone()[0]
        print(f"| {name} | {round((after - before) * 4096 / N)} |")


if __name__ == "__main__":
    main()
