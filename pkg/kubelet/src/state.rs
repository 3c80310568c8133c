//! What the kubelet remembers about a pod across restarts of kite:
//! `pods/<uid>/state.json` lists the container instances it started (the
//! runtime's bundles hold whether they still run and how they exited).

use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One container instance the kubelet started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// The container's name in the pod spec.
    pub name: String,
    /// The runtime's container ID.
    pub id: String,
    /// Which instance this is (the restart count when it started).
    pub attempt: i32,
    /// The image as the pod spec names it.
    pub image: String,
    /// The image's normalised name (`docker.io/library/busybox:latest`).
    pub image_name: String,
    /// `<repository>@<manifest digest>`, reported as `imageID`.
    pub image_id: String,
    /// The CRI log file.
    pub log: PathBuf,
    /// The host file mounted at `terminationMessagePath`.
    pub termination_file: PathBuf,
}

/// A pod's containers, newest instance last for each name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodState {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Container instances (current and previous ones).
    pub containers: Vec<ContainerRecord>,
}

impl PodState {
    /// The newest instance of container `name`.
    pub fn current(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.attempt)
    }

    /// The instance before the newest one of container `name`.
    pub fn previous(&self, name: &str) -> Option<&ContainerRecord> {
        let current = self.current(name)?.attempt;
        self.containers
            .iter()
            .filter(|c| c.name == name && c.attempt < current)
            .max_by_key(|c| c.attempt)
    }

    /// Loads `path`, or `None` when it does not exist or is unreadable.
    pub fn load(path: &Path) -> Option<Self> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    /// Writes the state atomically to `path`.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, attempt: i32) -> ContainerRecord {
        ContainerRecord {
            name: name.into(),
            id: format!("{name}{attempt}"),
            attempt,
            ..ContainerRecord::default()
        }
    }

    #[test]
    fn current_and_previous_instances() {
        let state = PodState {
            containers: vec![
                record("a", 0),
                record("b", 0),
                record("a", 1),
                record("a", 2),
            ],
            ..PodState::default()
        };
        assert_eq!(state.current("a").unwrap().attempt, 2);
        assert_eq!(state.previous("a").unwrap().attempt, 1);
        assert!(state.previous("b").is_none());
        assert!(state.current("c").is_none());
    }

    #[test]
    fn state_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p/state.json");
        let state = PodState {
            uid: "u".into(),
            containers: vec![record("a", 0)],
            ..PodState::default()
        };
        state.save(&path).unwrap();
        assert_eq!(PodState::load(&path).unwrap(), state);
        assert!(PodState::load(&dir.path().join("none")).is_none());
    }
}
