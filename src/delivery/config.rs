//! Settings shared by every webhook: the `[delivery]` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::ConfigError;

/// Settings shared by every webhook.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// A PEM bundle of extra CA certificates to trust for HTTPS webhooks, for receivers behind a
    /// private CA. Mozilla's roots and the system's store are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl DeliveryConfig {
    /// The checks of `[delivery]`, with keys relative to it (`ca_file`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(ca) = &self.ca_file {
            if !ca.is_file() {
                return Err(ConfigError::invalid(
                    "ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        Ok(())
    }
}
