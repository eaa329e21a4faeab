//! A real SMTP server for tests (mailin-embedded), on 127.0.0.1, that records what it
//! receives and answers some recipients the way real servers do: `nobody*` gets
//! 550 5.1.1, `busy*` gets 450 4.2.1. With [`SmtpServer::start_tls`] it offers STARTTLS
//! with a fresh self-signed certificate and requires AUTH PLAIN.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::response::{AUTH_OK, INVALID_CREDENTIALS, OK};
use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig};

#[derive(Clone, Default)]
struct Recorder {
    messages: Arc<Mutex<Vec<String>>>,
    /// Each transaction's MAIL FROM (the envelope sender).
    senders: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    current: Vec<u8>,
    credentials: Option<(String, String)>,
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> Response {
        self.connections.fetch_add(1, Ordering::SeqCst);
        OK
    }

    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, from: &str) -> Response {
        self.senders.lock().unwrap().push(from.to_owned());
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if to.starts_with("nobody") {
            Response::custom(
                550,
                "5.1.1 The email account that you tried to reach does not exist".into(),
            )
        } else if to.starts_with("busy") {
            Response::custom(450, "4.2.1 Mailbox busy, try again later".into())
        } else {
            OK
        }
    }

    fn data(&mut self, buf: &[u8]) -> Result<(), std::io::Error> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
        self.messages.lock().unwrap().push(message);
        Response::custom(250, "2.0.0 Ok: queued as 4FAKE1D".into())
    }

    fn auth_plain(&mut self, _authorization_id: &str, authentication_id: &str, password: &str) -> Response {
        match &self.credentials {
            Some((user, pass)) if user == authentication_id && pass == password => AUTH_OK,
            _ => INVALID_CREDENTIALS,
        }
    }
}

pub struct SmtpServer {
    pub port: u16,
    recorder: Recorder,
    _certificates: Option<tempdir::Files>,
}

mod tempdir {
    /// Certificate files that live as long as the server.
    pub struct Files(pub Vec<std::path::PathBuf>);

    impl Drop for Files {
        fn drop(&mut self) {
            for path in &self.0 {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl SmtpServer {
    /// A plaintext server without AUTH.
    pub fn start() -> Self {
        Self::run(SslConfig::None, Recorder::default(), None)
    }

    /// A server offering STARTTLS (self-signed) and requiring AUTH PLAIN as `user`/`password`.
    pub fn start_tls(user: &str, password: &str) -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let dir = std::env::temp_dir();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let cert_path = dir.join(format!("smtp-{id}.crt"));
        let key_path = dir.join(format!("smtp-{id}.key"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
        let recorder = Recorder {
            credentials: Some((user.to_owned(), password.to_owned())),
            ..Recorder::default()
        };
        let ssl = SslConfig::SelfSigned {
            cert_path: cert_path.display().to_string(),
            key_path: key_path.display().to_string(),
        };
        Self::run(ssl, recorder, Some(tempdir::Files(vec![cert_path, key_path])))
    }

    fn run(ssl: SslConfig, recorder: Recorder, files: Option<tempdir::Files>) -> Self {
        // The test build links two rustls crypto providers (mailin-embedded brings
        // aws-lc-rs; postrunner uses ring): choose ring, as the program does.
        postrunner_providers::http::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut server = Server::new(recorder.clone());
        server
            .with_name("smtp.test")
            .with_ssl(ssl)
            .unwrap()
            .with_tcp_listener(listener);
        if recorder.credentials.is_some() {
            server.with_auth(AuthMechanism::Plain);
        }
        // serve() runs for the life of the test process.
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self {
            port,
            recorder,
            _certificates: files,
        }
    }

    /// Raw messages received (headers and body, as sent after DATA).
    pub fn messages(&self) -> Vec<String> {
        self.recorder.messages.lock().unwrap().clone()
    }

    /// The envelope senders (MAIL FROM) of the transactions so far.
    pub fn envelope_senders(&self) -> Vec<String> {
        self.recorder.senders.lock().unwrap().clone()
    }

    /// SMTP sessions opened so far.
    pub fn connections(&self) -> usize {
        self.recorder.connections.load(Ordering::SeqCst)
    }
}

/// Implicit TLS (smtps) in front of a plaintext [`SmtpServer`]: accepts TLS with a fresh
/// self-signed certificate on its own port and relays the bytes to the server.
pub struct TlsFront {
    pub port: u16,
    /// Its self-signed certificate, to trust as a root.
    pub cert_pem: String,
}

impl TlsFront {
    pub async fn start(backend_port: u16) -> Self {
        postrunner_providers::http::install_crypto_provider();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let cert_pem = cert.cert.pem();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut backend) = tokio::net::TcpStream::connect(("127.0.0.1", backend_port)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        Self { port, cert_pem }
    }
}
