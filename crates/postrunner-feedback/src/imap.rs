//! A bounce mailbox over IMAP: log in, list the messages not yet processed, fetch them
//! whole, and flag them once their events are committed (src/kinds/bounce_mail.rs).
//!
//! async-imap speaks the protocol over any tokio stream; TLS is rustls with the
//! webpki roots (plus the PEM certificates in `POSTRUNNER_IMAP_CA_FILE`, for a private
//! CA). Two things its API does not check are checked here: a STORE goes through
//! `run_command_and_check_ok` (its `uid_store` stream ends quietly on NO or BAD, which
//! would leave mail unflagged and read again), and every response stream is drained
//! before the next command.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_imap::{Client, Session};
use futures_util::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use postrunner_providers::secret::Secret;

/// The keyword processed mail gets (with `\Seen`).
pub const DONE: &str = "$PostrunnerDone";

/// How long one IMAP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Messages fetched per UID FETCH.
const FETCH_BATCH: usize = 25;

/// Where a bounce mailbox is: `imaps://user@host[:port][/folder]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub folder: String,
}

/// Why a mailbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("bounce mailbox URL {0:?}: expected imaps://user@host[:port][/folder]")]
    Url(String),
    #[error("IMAP connection to {host}: {detail}")]
    Connect { host: String, detail: String },
    #[error("IMAP login as {user} refused: {detail}")]
    Login { user: String, detail: String },
    #[error("IMAP {command}: {detail}")]
    Command { command: &'static str, detail: String },
    #[error("IMAP server did not answer within {0:?}")]
    Timeout(Duration),
}

impl std::str::FromStr for MailboxUrl {
    type Err = MailboxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || MailboxError::Url(text.to_owned());
        let url = url::Url::parse(text).map_err(|_| bad())?;
        let tls = match url.scheme() {
            "imaps" => true,
            "imap" => false,
            _ => return Err(bad()),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?.to_owned();
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8()
            .map_err(|_| bad())?
            .into_owned();
        if user.is_empty() || url.password().is_some() {
            return Err(bad());
        }
        let folder = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| bad())?
            .into_owned();
        Ok(Self {
            tls,
            port: url.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            user,
            folder: if folder.is_empty() { "INBOX".to_owned() } else { folder },
        })
    }
}

/// A stream async-imap can talk over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

/// A logged-in mailbox with its folder selected.
pub struct Mailbox {
    session: Session<Box<dyn Io>>,
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> Result<T, MailboxError> {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .map_err(|_| MailboxError::Timeout(TIMEOUT))
}

fn command(command: &'static str) -> impl Fn(async_imap::error::Error) -> MailboxError {
    move |e| MailboxError::Command {
        command,
        detail: e.to_string(),
    }
}

/// The TLS client configuration: webpki's roots, and the certificates of
/// `POSTRUNNER_IMAP_CA_FILE` when it is set.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Ok(path) = std::env::var("POSTRUNNER_IMAP_CA_FILE") {
        for cert in CertificateDer::pem_file_iter(&path).map_err(|e| format!("POSTRUNNER_IMAP_CA_FILE {path}: {e}"))? {
            let cert = cert.map_err(|e| format!("POSTRUNNER_IMAP_CA_FILE {path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("POSTRUNNER_IMAP_CA_FILE {path}: {e}"))?;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

impl Mailbox {
    /// Connects, logs in and selects the URL's folder.
    ///
    /// # Errors
    /// [`MailboxError`] for a connection, TLS, login or SELECT failure.
    pub async fn open(url: &MailboxUrl, password: &Secret<String>) -> Result<Self, MailboxError> {
        let connect_error = |detail: String| MailboxError::Connect {
            host: url.host.clone(),
            detail,
        };
        let tcp = within(TcpStream::connect((url.host.as_str(), url.port)))
            .await?
            .map_err(|e| connect_error(e.to_string()))?;
        let io: Box<dyn Io> = if url.tls {
            let config = tls_config().map_err(connect_error)?;
            let name =
                rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| connect_error(e.to_string()))?;
            let tls = within(tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp))
                .await?
                .map_err(|e| connect_error(e.to_string()))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut client = Client::new(io);
        let greeting = within(client.read_response())
            .await?
            .map_err(|e| connect_error(e.to_string()))?;
        if greeting.is_none() {
            return Err(connect_error("closed before its greeting".to_owned()));
        }
        let mut session = within(client.login(&url.user, password.expose()))
            .await?
            .map_err(|(e, _)| MailboxError::Login {
                user: url.user.clone(),
                detail: e.to_string(),
            })?;
        within(session.select(&url.folder)).await?.map_err(command("SELECT"))?;
        Ok(Self { session })
    }

    /// The UIDs of the messages not yet flagged [`DONE`], oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`MailboxError::Command`] when the search fails.
    pub async fn unprocessed(&mut self, limit: usize) -> Result<Vec<u32>, MailboxError> {
        let found = within(self.session.uid_search(format!("UNKEYWORD {DONE}")))
            .await?
            .map_err(command("UID SEARCH"))?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        uids.truncate(limit);
        Ok(uids)
    }

    /// The raw RFC 822 bytes of `uids` (without setting `\Seen`: BODY.PEEK).
    ///
    /// # Errors
    /// [`MailboxError::Command`] when a fetch fails.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, MailboxError> {
        let mut messages = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(FETCH_BATCH) {
            let fetched: Vec<_> = within(async {
                let stream = self.session.uid_fetch(uid_set(chunk), "(UID BODY.PEEK[])").await?;
                stream.try_collect::<Vec<_>>().await
            })
            .await?
            .map_err(command("UID FETCH"))?;
            for fetch in fetched {
                if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
                    messages.push((uid, body.to_vec()));
                }
            }
        }
        Ok(messages)
    }

    /// Flags `uids` processed ([`DONE`] and `\Seen`), checking the server said OK.
    ///
    /// # Errors
    /// [`MailboxError::Command`] when the STORE is refused; the messages are then read
    /// again next time, and their events are already stored (nothing twice).
    pub async fn mark_processed(&mut self, uids: &[u32]) -> Result<(), MailboxError> {
        for chunk in uids.chunks(200) {
            let store = format!("UID STORE {} +FLAGS.SILENT ({DONE} \\Seen)", uid_set(chunk));
            within(self.session.run_command_and_check_ok(&store))
                .await?
                .map_err(command("UID STORE"))?;
        }
        Ok(())
    }

    /// Logs out (best effort: the server closes an abandoned session anyway).
    pub async fn close(mut self) {
        let _ = within(self.session.logout()).await;
    }
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_urls_name_tls_host_port_user_and_folder() {
        let url: MailboxUrl = "imaps://bounces%40acme.test@imap.acme.test/Bounces".parse().unwrap();
        assert_eq!(
            url,
            MailboxUrl {
                tls: true,
                host: "imap.acme.test".into(),
                port: 993,
                user: "bounces@acme.test".into(),
                folder: "Bounces".into()
            }
        );
        let local: MailboxUrl = "imap://b@127.0.0.1:1430".parse().unwrap();
        assert_eq!((local.tls, local.port, local.folder.as_str()), (false, 1430, "INBOX"));
        for bad in [
            "https://b@host",
            "imaps://host",
            "imaps://b:secret@host",
            "imaps://b@",
            "not a url",
        ] {
            assert!(bad.parse::<MailboxUrl>().is_err(), "{bad}");
        }
    }
}
