//! The rustls client configuration for the broker: ring as the one crypto provider of the binary
//! (as for HTTPS webhooks), Mozilla's and the system's roots plus `tls.ca_file`, and an optional
//! client certificate, which is how brokers like AWS IoT and most building systems authenticate.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::MqttTlsConfig;
use super::MqttError;

/// Reads the files named in `[mqtt.tls]` once, at start-up, so that a bad file stops the start
/// with its key named rather than failing every connection attempt later.
pub fn client_config(tls: &MqttTlsConfig) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = &tls.ca_file {
        for cert in certificates("mqtt.tls.ca_file", path)? {
            roots
                .add(cert)
                .map_err(|e| tls_error("mqtt.tls.ca_file", path, e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates("mqtt.tls.cert_file", cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_error("mqtt.tls.key_file", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| tls_error("mqtt.tls.key_file", key, e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(key, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(key, path, e))?;
    if certs.is_empty() {
        return Err(tls_error(key, path, "contains no PEM certificate"));
    }
    Ok(certs)
}

fn tls_error(key: &str, path: &Path, e: impl std::fmt::Display) -> MqttError {
    MqttError::Tls(format!("{key} {}: {e}", path.display()))
}
