//! Cameras added over the API, remembered across restarts and power cuts.
//!
//! A row keeps the camera as the API received it (the same JSON a `[[cameras]]` entry would hold)
//! and whether the installer wants it running. It is read back through the same parser and checks
//! as the config file, so a camera behaves the same wherever it was defined. What a camera does on
//! its own (a source lost, a file that ended) is not written here: the row says what was asked,
//! and the appliance asks for it again after a restart.

use rusqlite::params;
use serde_json::Value;

use super::{now_text, Durability, Result, Store};

/// A camera the API added, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCamera {
    pub id: String,
    /// The camera's definition as received (a `CameraConfig` in JSON).
    pub config: Value,
    /// Started with the appliance when true.
    pub running: bool,
}

impl Store {
    /// Stores a camera, replacing one of the same id. Written with the events' durability: an
    /// installer who got a 200 expects the camera to survive the power cut that follows.
    pub fn put_camera(&self, id: &str, config: &Value, running: bool) -> Result<()> {
        let json = config.to_string();
        self.write(Durability::Events, |tx| {
            let now = now_text();
            tx.execute(
                "INSERT INTO cameras (id, config, running, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (id) DO UPDATE SET config = ?2, running = ?3, updated_at = ?4",
                params![id, json, running, now],
            )?;
            Ok(())
        })
    }

    /// Records whether a stored camera should run; false when there is no such row.
    pub fn set_camera_running(&self, id: &str, running: bool) -> Result<bool> {
        self.write(Durability::Events, |tx| {
            let n = tx.execute(
                "UPDATE cameras SET running = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, running, now_text()],
            )?;
            Ok(n > 0)
        })
    }

    /// Forgets a stored camera; false when there was none.
    pub fn delete_camera(&self, id: &str) -> Result<bool> {
        self.write(Durability::Events, |tx| {
            Ok(tx.execute("DELETE FROM cameras WHERE id = ?1", [id])? > 0)
        })
    }

    /// Every stored camera, in the order they were first added.
    pub fn stored_cameras(&self) -> Result<Vec<StoredCamera>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, config, running FROM cameras ORDER BY rowid")?;
            let rows = stmt.query_map([], |r| {
                let text: String = r.get(1)?;
                Ok(StoredCamera {
                    id: r.get(0)?,
                    // A row is written only from a value that parsed; a damaged one reads as
                    // null, which the camera parser then refuses with a message naming the id.
                    config: serde_json::from_str(&text).unwrap_or(Value::Null),
                    running: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    #[test]
    fn cameras_are_stored_replaced_switched_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let door = json!({"camera_id": "door", "source": "synthetic"});
        store.put_camera("door", &door, true).unwrap();
        store
            .put_camera("yard", &json!({"camera_id": "yard", "source": "0"}), false)
            .unwrap();
        let moved = json!({"camera_id": "door", "source": "synthetic", "fps": 2});
        store.put_camera("door", &moved, true).unwrap();
        assert!(store.set_camera_running("yard", true).unwrap());
        assert!(!store.set_camera_running("gone", true).unwrap());
        let all = store.stored_cameras().unwrap();
        assert_eq!(
            all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["door", "yard"]
        );
        assert_eq!(all[0].config, moved);
        assert!(all[1].running);
        assert!(store.delete_camera("door").unwrap());
        assert!(!store.delete_camera("door").unwrap());
        assert_eq!(store.stored_cameras().unwrap().len(), 1);
    }
}
