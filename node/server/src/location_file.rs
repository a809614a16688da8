//! The node's location (`location`, `region.zone`) when it comes from a file
//! (`location-file`): how the operator hands every pod the zone of the Kubernetes node it
//! landed on (one file per Kubernetes node in a ConfigMap the operator keeps from the
//! nodes' `topology.kubernetes.io/region` and `.../zone` labels).

use std::path::Path;
use std::time::{Duration, Instant};

use restate_config::Config;
use restate_types::Location;

use crate::startup_error::StartupError;

/// How long a start waits for the file to appear (a ConfigMap written after the pod was
/// placed reaches the pod's volume within about a minute).
const WAIT_FOR_FILE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_secs(2);

/// `location` when set; else the contents of `location-file` (waiting for it to exist, for
/// at most [`WAIT_FOR_FILE`]); else no location.
pub async fn resolve(config: &Config) -> Result<Location, StartupError> {
    if !config.location.is_empty() {
        return Ok(config.location.clone());
    }
    let Some(path) = &config.location_file else { return Ok(Location::default()) };
    let started = Instant::now();
    let mut said = false;
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => return parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && started.elapsed() < WAIT_FOR_FILE => {
                if !said {
                    tracing::info!(file = %path.display(), "waiting for the location file (location-file) to appear");
                    said = true;
                }
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                return Err(StartupError::Unsupported {
                    key: "location-file",
                    message: format!(
                        "cannot read {}: {e}{}",
                        path.display(),
                        if e.kind() == std::io::ErrorKind::NotFound {
                            format!(" (waited {}s; under the operator the file appears once it has read the Kubernetes node's labels)", WAIT_FOR_FILE.as_secs())
                        } else {
                            String::new()
                        }
                    ),
                })
            }
        }
    }
}

/// The file holds `region.zone` (surrounding whitespace ignored; empty: no location).
fn parse(path: &Path, text: &str) -> Result<Location, StartupError> {
    let location = text
        .trim()
        .parse::<Location>()
        .map_err(|e| StartupError::Unsupported { key: "location-file", message: format!("{}: {e}", path.display()) })?;
    tracing::info!(location = %location, file = %path.display(), "location read from location-file");
    Ok(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_gives_the_location_unless_location_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node-a");
        std::fs::write(&file, "eu-west-1.eu-west-1a\n").unwrap();
        let mut config = Config { location_file: Some(file.clone()), ..Config::default() };
        assert_eq!(resolve(&config).await.unwrap().to_string(), "eu-west-1.eu-west-1a");
        config.location = "us.b".parse().unwrap();
        assert_eq!(resolve(&config).await.unwrap().to_string(), "us.b");
        config.location = Location::default();
        std::fs::write(&file, "a.b.c").unwrap();
        let message = resolve(&config).await.unwrap_err().to_string();
        assert!(message.contains("location-file") && message.contains("more than two parts"), "{message}");
        std::fs::write(&file, "").unwrap();
        assert!(resolve(&config).await.unwrap().is_empty());
    }
}
