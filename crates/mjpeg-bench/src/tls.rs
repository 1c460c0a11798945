//! HTTPS and HTTP/2 for the load client: the rustls client configuration
//! for an `https://` URL, trusting the certificates it is given.

use anyhow::{bail, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// How to speak TLS to the stream's server.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    pub(crate) connector: TlsConnector,
    pub(crate) name: ServerName<'static>,
    /// HTTP/2 by ALPN, one connection per client; else HTTP/1.1.
    pub(crate) http2: bool,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("name", &self.name)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

/// The TLS client for `host`, trusting the PEM certificates in `ca` (the
/// server's own, when it is self-signed, or the CA that signed it).
pub(crate) fn target(host: &str, ca: Option<&Path>, http2: bool) -> anyhow::Result<TlsTarget> {
    let Some(ca) = ca else {
        bail!(
            "an https:// URL needs --ca FILE: the PEM certificate of the server (or of the CA \
             that signed it) to trust"
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("--ca {}: cannot read it", ca.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--ca {}: not PEM certificates", ca.display()))?;
    if certs.is_empty() {
        bail!("--ca {}: no certificate in it", ca.display());
    }
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("--ca {}: a certificate rustls refuses", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .with_context(|| format!("{host:?} is not a name TLS can check"))?;
    Ok(TlsTarget {
        connector: TlsConnector::from(Arc::new(config)),
        name,
        http2,
    })
}
