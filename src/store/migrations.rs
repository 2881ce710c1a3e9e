//! Versioned schema migrations.
//!
//! `PRAGMA user_version` holds the version a database is at. Each step runs in its own transaction
//! together with the version bump, so a power cut during an upgrade leaves the database at the last
//! complete version and the next start simply carries on. A binary refuses a database newer than it
//! knows rather than guessing at its layout.

use rusqlite::Connection;

use super::StoreError;

/// Step `i` takes a database from version `i` to version `i + 1`.
const STEPS: &[&str] = &[
    // v1: the outbox. AUTOINCREMENT so that a sequence number is never reused, even after the quota
    // has deleted the newest rows: a sink's cursor must never skip a new event.
    r#"
    CREATE TABLE events (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        id     TEXT NOT NULL UNIQUE,
        type   TEXT NOT NULL,
        camera TEXT NOT NULL,
        json   TEXT NOT NULL,
        time   INTEGER NOT NULL            -- unix milliseconds of the commit
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    "#,
    // v2: sinks and their bookkeeping.
    r#"
    CREATE TABLE webhooks (
        id              TEXT PRIMARY KEY,
        config          TEXT NOT NULL,     -- the WebhookConfig as JSON, without the secret
        secret          TEXT NOT NULL,
        origin          TEXT NOT NULL,     -- 'config', 'api' or 'stream'
        created_at      TEXT NOT NULL,
        total_sent      INTEGER NOT NULL DEFAULT 0,
        success_count   INTEGER NOT NULL DEFAULT 0,
        failed_count    INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        failed_attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sink_cursors (
        sink    TEXT PRIMARY KEY,          -- 'webhook:<id>' or 'mqtt'
        seq     INTEGER NOT NULL,          -- the last event this sink has acknowledged or skipped
        dropped INTEGER NOT NULL DEFAULT 0 -- events removed by the quota before this sink had them
    );
    CREATE TABLE delivery_attempts (
        id         INTEGER PRIMARY KEY,
        webhook_id TEXT NOT NULL,
        msg_id     TEXT NOT NULL,
        attempt    INTEGER NOT NULL,
        first_seq  INTEGER NOT NULL,
        last_seq   INTEGER NOT NULL,
        events     INTEGER NOT NULL,
        status     INTEGER,
        error      TEXT,
        latency_ms REAL NOT NULL,
        at         TEXT NOT NULL
    );
    CREATE INDEX delivery_attempts_by_webhook ON delivery_attempts (webhook_id, id);
    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY,
        webhook_id  TEXT NOT NULL,
        first_seq   INTEGER NOT NULL,
        last_seq    INTEGER NOT NULL,
        event_count INTEGER NOT NULL,
        events      TEXT NOT NULL,          -- JSON array of the events as sent, kept past pruning
        error       TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        replay      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX dead_letters_by_webhook ON dead_letters (webhook_id, id);
    "#,
    // v3: the gallery, FaceCV's data model: one row per enrolled image, several per person.
    r#"
    CREATE TABLE faces (
        id              TEXT PRIMARY KEY,  -- uuid
        name            TEXT NOT NULL,
        embedding       BLOB NOT NULL,     -- little-endian f32, L2-normalised
        embedding_model TEXT NOT NULL,     -- embeddings of different models never compare
        metadata        TEXT NOT NULL,     -- JSON object: department, employee_id, ...
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX faces_by_name ON faces (name);
    "#,
    // v4: cameras added over the API, so that they come back after a restart or a power cut.
    // Cameras of the config file are not stored: the file is their source of truth.
    r#"
    CREATE TABLE cameras (
        id         TEXT PRIMARY KEY,
        config     TEXT NOT NULL,          -- the camera as the API received it (JSON)
        running    INTEGER NOT NULL,       -- wanted state: 1 = start it with the appliance
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    "#,
    // v5: the pictures of each enrolled face (the aligned crop and the photo it came from), in
    // the database rather than in files: written in the face's own transaction and removed with
    // it (a trigger), so a power cut never leaves a face without its pictures or pictures without
    // a face; counted by the quota as the store's own pages; carried by a salvage like any
    // table. `bytes` keeps the bound on their total (`store::faces`) a sum over a column.
    r#"
    CREATE TABLE face_images (
        face_id TEXT PRIMARY KEY,          -- faces.id
        crop    BLOB NOT NULL,             -- JPEG: the aligned face the embedder saw
        photo   BLOB NOT NULL,             -- JPEG: the photo it came from, long side <= 1024 px
        bytes   INTEGER NOT NULL
    );
    CREATE TRIGGER face_images_go_with_their_face AFTER DELETE ON faces BEGIN
        DELETE FROM face_images WHERE face_id = OLD.id;
    END;
    "#,
];

/// The version this binary writes.
pub const LATEST: u32 = STEPS.len() as u32;

/// Brings the database up to [`LATEST`], one transaction per step.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    migrate_to(conn, LATEST)
}

/// Brings the database up to `target`; used by tests to make an older database.
pub fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32, StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > LATEST {
        return Err(StoreError::TooNew {
            found,
            known: LATEST,
        });
    }
    for version in found..target.min(LATEST) {
        let tx = conn.transaction()?;
        tx.execute_batch(STEPS[version as usize])?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        tracing::info!(from = version, to = version + 1, "store schema upgraded");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    }

    #[test]
    fn an_old_database_upgrades_to_the_same_schema_as_a_new_one_and_keeps_its_events() {
        for from in 1..LATEST {
            upgrade_from(from);
        }
    }

    /// A database left at `from` by an older binary, with an event (v1) and an enrolled face (v3)
    /// where its version has those tables, upgrades to the fresh schema and keeps its rows.
    fn upgrade_from(from: u32) {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Connection::open(dir.path().join("old.db")).unwrap();
        migrate_to(&mut old, from).unwrap();
        old.execute(
            "INSERT INTO events (id, type, camera, json, time) VALUES ('evt_1', 'stream_started', 'cam', '{}', 1)",
            [],
        )
        .unwrap();
        if from >= 3 {
            old.execute(
                "INSERT INTO faces VALUES ('f1', 'Ana', x'0000803f', 'm', '{}', 't', 't')",
                [],
            )
            .unwrap();
        }
        assert_eq!(migrate(&mut old).unwrap(), from);

        let mut fresh = Connection::open(dir.path().join("fresh.db")).unwrap();
        assert_eq!(migrate(&mut fresh).unwrap(), 0);

        assert_eq!(schema(&old), schema(&fresh));
        let id: String = old
            .query_row("SELECT id FROM events WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, "evt_1");
        if from >= 3 {
            let name: String = old
                .query_row("SELECT name FROM faces WHERE id = 'f1'", [], |r| r.get(0))
                .unwrap();
            assert_eq!(name, "Ana");
        }
        let cameras: i64 = old
            .query_row("SELECT COUNT(*) FROM cameras", [], |r| r.get(0))
            .unwrap();
        assert_eq!(cameras, 0, "an upgraded database has no API cameras yet");
        let images: i64 = old
            .query_row("SELECT COUNT(*) FROM face_images", [], |r| r.get(0))
            .unwrap();
        assert_eq!(images, 0, "faces enrolled before v5 have no images");
        let v: u32 = old
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("new.db")).unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew { .. })));
    }
}
