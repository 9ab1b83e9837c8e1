//! rustls server configuration for the SIP TLS listener (aws-lc-rs provider).

use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

use crate::config::TlsConfig;

/// A TLS acceptor from the configured PEM files, or from a self-signed certificate for
/// `advertise` when none is configured (a development default; say so in the log).
pub(crate) fn acceptor(
    cfg: &TlsConfig,
    advertise: &str,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let (certs, key) = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => {
            let certs = CertificateDer::pem_file_iter(c)
                .with_context(|| format!("reading {}", c.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", c.display()))?;
            let key = PrivateKeyDer::from_pem_file(k)
                .with_context(|| format!("reading {}", k.display()))?;
            (certs, key)
        }
        _ => {
            warn!(
                "no tls.cert_file configured: using a self-signed certificate (development only)"
            );
            let ck = rcgen::generate_simple_self_signed(vec![
                advertise.to_owned(),
                "localhost".to_owned(),
            ])
            .context("generating a self-signed certificate")?;
            let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
                .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?;
            (vec![ck.cert.der().clone()], key)
        }
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("TLS certificate and key do not match")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The client configuration for outbound TLS: trust anchors from `tls.ca_file`, or the system
/// bundle (Debian's ca-certificates) when it is not set.
pub(crate) fn connector(cfg: &TlsConfig) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let path = cfg
        .ca_file
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    if path.exists() {
        for cert in CertificateDer::pem_file_iter(&path)
            .with_context(|| format!("reading {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("a certificate in {}", path.display()))?;
        }
    } else {
        warn!(path = %path.display(), "no trust anchors for outbound TLS");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
