"""The tables of schema version 1 (the first SQLite broker), to test that older files are brought up to date."""

FIRST_SCHEMA = """
CREATE TABLE queues (name TEXT PRIMARY KEY, kind TEXT NOT NULL, max_length INTEGER, delivery_limit INTEGER);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body BLOB NOT NULL,
    headers TEXT NOT NULL, message_id TEXT, content_type TEXT, timestamp TEXT, persistent INTEGER NOT NULL,
    ready_at REAL NOT NULL, session INTEGER, delivery_count INTEGER NOT NULL DEFAULT 0,
    redelivered INTEGER NOT NULL DEFAULT 0);
CREATE INDEX messages_free ON messages (queue, id) WHERE session IS NULL;
CREATE INDEX messages_due ON messages (queue, ready_at) WHERE session IS NULL;
CREATE INDEX messages_claimed ON messages (session) WHERE session IS NOT NULL;
CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL, host TEXT NOT NULL,
    heartbeat REAL NOT NULL, wake TEXT);
CREATE TABLE consumers (id INTEGER PRIMARY KEY AUTOINCREMENT, session INTEGER NOT NULL, queue TEXT NOT NULL);
CREATE INDEX consumers_queue ON consumers (queue);
"""
