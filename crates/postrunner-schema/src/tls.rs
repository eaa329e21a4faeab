//! TLS for the migration connection. The pools (sqlx) read libpq's `sslmode` and
//! `sslrootcert` from the URL themselves; tokio-postgres, which the migrations run on,
//! knows only `disable`, `prefer` and `require` and never checks a certificate. So a URL
//! asking for TLS is split here: tokio-postgres gets `sslmode=require` and a rustls
//! connector that verifies the server's certificate chain (against `sslrootcert`, or
//! the Web PKI roots without one) and its host name, as `verify-full` does.
//!
//! `require` and `verify-ca` get the same full verification: a migration changes the
//! schema, and is the last connection that should trust an unverified server.
//! tests/database_tls.rs runs all of this against a PostgreSQL cluster with TLS on.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The URL's TLS request could not be honoured.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("the database URL does not parse: {0}")]
    Url(#[from] url::ParseError),
    #[error("sslmode={0} is not a mode postrunner knows (disable, allow, prefer, require, verify-ca, verify-full)")]
    Mode(String),
    #[error("sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
    #[error("client certificates (sslcert, sslkey) are not supported; use password or SCRAM authentication")]
    ClientCert,
}

/// How to connect: the URL tokio-postgres accepts, and a TLS connector when TLS is
/// required (None: plain, as `disable`, `allow` and `prefer` connect).
pub struct MigrationConnect {
    pub url: String,
    pub tls: Option<MakeRustlsConnect>,
}

/// Splits `database_url` for tokio-postgres (see the module docs). Key=value
/// connection strings (not URLs) are passed through unchanged, without TLS.
///
/// # Errors
/// [`TlsConfigError`]: an unknown mode, an unreadable root certificate, or a client
/// certificate.
pub fn for_migrations(database_url: &str) -> Result<MigrationConnect, TlsConfigError> {
    if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
        return Ok(MigrationConnect {
            url: database_url.to_owned(),
            tls: None,
        });
    }
    let mut url = url::Url::parse(database_url)?;
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = Some(value.into_owned()),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            "sslcert" | "sslkey" => return Err(TlsConfigError::ClientCert),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    let verify = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => false,
        Some("require" | "verify-ca" | "verify-full") => true,
        Some(other) => return Err(TlsConfigError::Mode(other.to_owned())),
    };
    if verify {
        kept.push(("sslmode".to_owned(), "require".to_owned()));
    } else if let Some(mode) = mode {
        // tokio-postgres has no `allow`; it is `prefer` without TLS, as here.
        kept.push((
            "sslmode".to_owned(),
            if mode == "allow" { "prefer".to_owned() } else { mode },
        ));
    }
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept.iter());
    }
    let tls = if verify {
        Some(MakeRustlsConnect::new(client_config(root_cert.as_deref())?))
    } else {
        None
    };
    Ok(MigrationConnect {
        url: url.to_string(),
        tls,
    })
}

/// A rustls client that verifies chain and host name against `root_cert` (a PEM file
/// of one or more CA certificates) or the Web PKI roots.
fn client_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let problem = |reason: String| TlsConfigError::RootCert {
                path: path.to_owned(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| problem(e.to_string()))?;
            if certificates.is_empty() {
                return Err(problem("no PEM certificate in it".to_owned()));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|e| problem(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::RootCert {
            path: root_cert.unwrap_or("(web pki)").to_owned(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_pass_through_without_tls() {
        let plain = for_migrations("postgres://u@db:5432/postrunner?application_name=x").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.url, "postgres://u@db:5432/postrunner?application_name=x");
        let prefer = for_migrations("postgres://u@db/p?sslmode=prefer").unwrap();
        assert!(prefer.tls.is_none());
        assert!(prefer.url.ends_with("sslmode=prefer"));
    }

    #[test]
    fn verify_full_becomes_require_with_a_verifying_connector() {
        let connect = for_migrations("postgres://u@db/p?sslmode=verify-full&application_name=m").unwrap();
        assert!(connect.tls.is_some());
        assert_eq!(connect.url, "postgres://u@db/p?application_name=m&sslmode=require");
    }

    #[test]
    fn bad_requests_are_refused_clearly() {
        assert!(matches!(
            for_migrations("postgres://u@db/p?sslmode=verify-everything"),
            Err(TlsConfigError::Mode(_))
        ));
        assert!(matches!(
            for_migrations("postgres://u@db/p?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            Err(TlsConfigError::RootCert { .. })
        ));
        assert!(matches!(
            for_migrations("postgres://u@db/p?sslmode=verify-full&sslcert=/c.pem"),
            Err(TlsConfigError::ClientCert)
        ));
    }
}
