//! A TCP proxy in front of PostgreSQL that a test controls, to make the network faults a
//! failover makes: connections cut, new ones accepted and closed at once (HAProxy while
//! no primary is up), traffic stalled without a reset (a half-open cut), and a statement
//! that commits but whose reply never comes back.
//!
//! It forwards bytes. To lose a statement's reply it follows the client's side of the
//! extended query protocol just enough: a Parse message whose text holds a pattern names
//! a prepared statement, and a Bind of that statement is an execution of it
//! ([`ClientMessages`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Connect them to the server.
    Forward,
    /// Accept them, read what the client sends first, and close them, as HAProxy does
    /// while no server passes its check.
    Close,
}

struct Control {
    accept: Mutex<Accept>,
    /// Bumped by [`TcpProxy::cut`]: every connection older than the bump closes.
    generation: watch::Sender<u64>,
    /// True while traffic is held (nothing forwarded, nothing closed).
    stalled: watch::Sender<bool>,
    /// A pattern whose statement's reply is to be lost, and how many more times.
    lose_reply: Mutex<Option<(Vec<u8>, usize)>>,
    /// After a lost reply: cut every connection and close new ones for this long.
    outage_after_loss: Mutex<Option<Duration>>,
}

/// A proxy listening on 127.0.0.1, forwarding to `target`; stops when dropped.
pub struct TcpProxy {
    pub port: u16,
    control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy to `target` (`host:port`).
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let control = Arc::new(Control {
            accept: Mutex::new(Accept::Forward),
            generation: watch::channel(0).0,
            stalled: watch::channel(false).0,
            lose_reply: Mutex::new(None),
            outage_after_loss: Mutex::new(None),
        });
        let task = tokio::spawn(listen(listener, target, control.clone()));
        Self { port, control, task }
    }

    /// Starts a proxy to the server of `url` (a PostgreSQL URL).
    pub async fn in_front_of(url: &str) -> Self {
        let parsed = url::Url::parse(url).expect("a database URL");
        let host = parsed.host_str().expect("a host");
        let port = parsed.port().unwrap_or(5432);
        let target = tokio::net::lookup_host((host, port))
            .await
            .expect("the database host resolves")
            .next()
            .expect("an address");
        Self::start(target).await
    }

    /// `url` (a PostgreSQL URL) with its port replaced by the proxy's and TLS preferred,
    /// the default: the client asks for TLS, and the proxy declines (see [`forward`]).
    pub fn url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("a database URL");
        parsed.set_port(Some(self.port)).unwrap();
        let query: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(query)
            .append_pair("sslmode", "prefer");
        parsed.to_string()
    }

    /// What to do with new connections from now on.
    pub fn accept(&self, accept: Accept) {
        *self.control.accept.lock().unwrap() = accept;
    }

    /// Closes every open connection (both sides), as a server that went away does.
    pub fn cut(&self) {
        self.control.generation.send_modify(|g| *g += 1);
    }

    /// Holds all traffic (`true`) without closing anything, or lets it flow again.
    pub fn stall(&self, stalled: bool) {
        self.control.stalled.send_replace(stalled);
    }

    /// The next `times` executions of a statement whose text holds `pattern` (prepared
    /// before or after this call) reach the server and run; the server's replies are
    /// thrown away and their connections closed, as when a primary goes down between
    /// committing a statement and answering it.
    pub fn lose_reply_to(&self, pattern: &[u8], times: usize) {
        *self.control.lose_reply.lock().unwrap() = Some((pattern.to_vec(), times));
    }

    /// A primary failing over while it answers a statement: the next execution of the
    /// statement whose text holds `pattern` runs, its reply is lost, every connection
    /// is cut, and new ones are accepted and closed for `outage` (HAProxy with no
    /// primary), after which they reach the server again.
    pub fn fail_over_during(&self, pattern: &[u8], outage: Duration) {
        *self.control.outage_after_loss.lock().unwrap() = Some(outage);
        self.lose_reply_to(pattern, 1);
    }

    /// Whether every reply [`lose_reply_to`](Self::lose_reply_to) was to lose is lost.
    pub fn replies_lost(&self) -> bool {
        self.control.lose_reply.lock().unwrap().is_none()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn listen(listener: TcpListener, target: SocketAddr, control: Arc<Control>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let accept = *control.accept.lock().unwrap();
        if accept == Accept::Close {
            tokio::spawn(async move {
                let mut client = client;
                let mut first = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(1), client.read(&mut first)).await;
            });
            continue;
        }
        // Subscribed before the handshake, so that a cut during it closes it too.
        let generation = control.generation.subscribe();
        tokio::spawn(forward(client, target, control.clone(), generation));
    }
}

/// The SSLRequest message: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// One connection: bytes both ways until either side closes or the proxy cuts it. The
/// proxy answers a client's SSLRequest itself with "N" (no TLS), so that a client that
/// prefers TLS talks in plain text that [`ClientMessages`] can follow.
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    control: Arc<Control>,
    mut generation: watch::Receiver<u64>,
) {
    let born = *generation.borrow_and_update();
    let mut first = [0u8; 8];
    if client.read_exact(&mut first).await.is_err() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let mut messages = ClientMessages::default();
    if first == SSL_REQUEST {
        if client.write_all(b"N").await.is_err() {
            return;
        }
    } else {
        messages.feed(&first, None);
        if server.write_all(&first).await.is_err() {
            return;
        }
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Set when this connection's next reply is to be lost.
    let losing = Arc::new(AtomicBool::new(false));
    let upstream = pump(client_read, server_write, control.clone(), losing.clone(), messages);
    let downstream = pump_replies(server_read, client_write, control.clone(), losing);
    let cut = async {
        loop {
            if *generation.borrow_and_update() != born {
                return;
            }
            if generation.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut => {}
    }
}

/// Client to server: forwards each chunk, arming the loss of the reply when a chunk
/// holds the pattern.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
    losing: Arc<AtomicBool>,
    mut messages: ClientMessages,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        wait_while_stalled(&control).await;
        {
            let mut armed = control.lose_reply.lock().unwrap();
            let pattern = armed.as_ref().map(|(p, _)| p.clone());
            if messages.feed(&buf[..n], pattern.as_deref()) {
                if let Some((_, times)) = armed.as_mut() {
                    *times -= 1;
                    if *times == 0 {
                        *armed = None;
                    }
                }
                losing.store(true, Ordering::SeqCst);
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The client's side of the protocol, message by message: the text of each prepared
/// statement, and whether a chunk executes one whose text holds the pattern.
#[derive(Default)]
struct ClientMessages {
    pending: Vec<u8>,
    /// Past the startup message (the only one without a type byte).
    started: bool,
    /// The text of every statement the client prepared, by name (`""`: the unnamed one,
    /// replaced by each Parse of it).
    statements: std::collections::HashMap<Vec<u8>, Vec<u8>>,
}

impl ClientMessages {
    /// Takes in `bytes`; true when they hold a Bind of a statement whose text holds
    /// `pattern` (the start of its execution).
    fn feed(&mut self, bytes: &[u8], pattern: Option<&[u8]>) -> bool {
        self.pending.extend_from_slice(bytes);
        let mut executes = false;
        loop {
            let (header, length_at) = if self.started { (5, 1) } else { (4, 0) };
            if self.pending.len() < header {
                return executes;
            }
            let length = u32::from_be_bytes(self.pending[length_at..length_at + 4].try_into().unwrap()) as usize;
            let total = length_at + length;
            if self.pending.len() < total {
                return executes;
            }
            let message: Vec<u8> = self.pending.drain(..total).collect();
            if !self.started {
                self.started = true;
                continue;
            }
            let mut fields = message[header..].split(|b| *b == 0);
            match message[0] {
                b'P' => {
                    let name = fields.next().unwrap_or_default().to_vec();
                    let text = fields.next().unwrap_or_default().to_vec();
                    self.statements.insert(name, text);
                }
                b'B' => {
                    let _portal = fields.next();
                    let statement = fields.next().unwrap_or_default();
                    let text = self.statements.get(statement).map(Vec::as_slice).unwrap_or_default();
                    executes |= pattern.is_some_and(|p| text.windows(p.len()).any(|w| w == p));
                }
                _ => {}
            }
        }
    }
}

/// Server to client: forwards each chunk, unless the reply is to be lost: then it waits
/// for the whole reply (the server's ReadyForQuery, `Z`), throws it away, and returns,
/// closing the connection.
async fn pump_replies(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<Control>,
    losing: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        wait_while_stalled(&control).await;
        if losing.load(Ordering::SeqCst) {
            // ReadyForQuery is `Z`, length 5, then the transaction status byte: the
            // statement has finished (and an autocommit one has committed).
            let mut seen = buf[..n].to_vec();
            while !ready_for_query_at_end(&seen) {
                match tokio::time::timeout(Duration::from_secs(10), from.read(&mut buf)).await {
                    Ok(Ok(m)) if m > 0 => seen.extend_from_slice(&buf[..m]),
                    _ => break,
                }
            }
            if let Some(outage) = control.outage_after_loss.lock().unwrap().take() {
                *control.accept.lock().unwrap() = Accept::Close;
                control.generation.send_modify(|g| *g += 1);
                let control = control.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(outage).await;
                    *control.accept.lock().unwrap() = Accept::Forward;
                });
            }
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn ready_for_query_at_end(bytes: &[u8]) -> bool {
    bytes.len() >= 6 && bytes[bytes.len() - 6..bytes.len() - 1] == [b'Z', 0, 0, 0, 5]
}

async fn wait_while_stalled(control: &Control) {
    let mut stalled = control.stalled.subscribe();
    while *stalled.borrow_and_update() {
        if stalled.changed().await.is_err() {
            return;
        }
    }
}
