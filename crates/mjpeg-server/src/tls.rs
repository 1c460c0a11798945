//! TLS with rustls: a PEM certificate chain and key, reloadable while the
//! server runs (on SIGHUP in the standalone server), offering HTTP/2.
//!
//! HTTP/2 is the reason to serve TLS here even on a LAN: browsers open at
//! most six HTTP/1.1 connections per host, and every MJPEG stream holds one
//! open for good, so a page with a seventh stream stalls. Over HTTP/2 all of
//! a page's streams share one connection. Browsers speak HTTP/2 only over
//! TLS, negotiated by ALPN.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no PEM object of the kind needed.
    #[error("{what} {path}: {message}")]
    File {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("certificate {cert} with key {key}: {error}")]
    Config {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        error: rustls::Error,
    },
}

/// The TLS settings of a server: where the PEM files are and the
/// configuration loaded from them. Cloning shares it (one pointer, so a
/// connection can hold one), and a [`reload`](Tls::reload) is seen by every
/// listener.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.inner.cert)
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate chain (`cert`, PEM, leaf first) and private key
    /// (`key`, PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Tls, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let config = load_config(&cert, &key)?;
        Ok(Tls {
            inner: Arc::new(Inner {
                cert,
                key,
                current: RwLock::new(Arc::new(config)),
            }),
        })
    }

    /// Reads the files again and uses them for new connections; on an error
    /// the previous certificate stays in use (a renewal script that wrote
    /// half a file must not take the server down).
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_config(&self.inner.cert, &self.inner.key)?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.inner.cert
    }
}

fn load_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let file_error = |what, path: &Path, message: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| file_error("certificate", cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("certificate", cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            "certificate",
            cert_path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| file_error("key", key_path, e.to_string()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|error| TlsError::Config {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
                error,
            })?;
    // HTTP/2 first: a browser that can share one connection among all the
    // streams of a page should.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(
            e.starts_with("certificate ") && e.contains("cert.pem"),
            "{e}"
        );
        std::fs::write(&cert, "not pem").unwrap();
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");

        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(e.starts_with("key ") && e.contains("key.pem"), "{e}");
        // A key that is not the certificate's.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("key.pem"), "{e}");
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        assert_eq!(tls.config().alpn_protocols[0], b"h2");
        // A broken file on reload keeps the old configuration.
        let before = Arc::as_ptr(&tls.config());
        std::fs::write(&key, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(Arc::as_ptr(&tls.config()), before);
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        tls.reload().unwrap();
        assert_ne!(Arc::as_ptr(&tls.config()), before);
    }
}
