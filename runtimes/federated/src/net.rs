//! Connections: the director's TLS acceptor and the client side's TLS connector.
//!
//! TLS is done here with tokio-rustls, outside tonic, so that a refused handshake is logged on
//! the director with its reason, the verified peer identity reaches the service as connection
//! info, and a client sees rustls's own error (explained by [`crate::tls::explain`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::tls::{PeerIdentity, TlsConfig, identity_of};
use crate::{Error, Result};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 flow-control windows: large enough that a 10 MB state streams without stalls.
pub(crate) const STREAM_WINDOW: u32 = 8 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;
/// HTTP/2 frame size: fewer, larger frames for large states.
pub(crate) const MAX_FRAME: u32 = 1 << 20;

/// One of two streams.
pub(crate) enum Either<A, B> {
    A(A),
    B(B),
}

impl<A: AsyncRead + Unpin, B: AsyncRead + Unpin> AsyncRead for Either<A, B> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Either::A(a) => Pin::new(a).poll_read(cx, buf),
            Either::B(b) => Pin::new(b).poll_read(cx, buf),
        }
    }
}

impl<A: AsyncWrite + Unpin, B: AsyncWrite + Unpin> AsyncWrite for Either<A, B> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Either::A(a) => Pin::new(a).poll_write(cx, buf),
            Either::B(b) => Pin::new(b).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Either::A(a) => Pin::new(a).poll_flush(cx),
            Either::B(b) => Pin::new(b).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Either::A(a) => Pin::new(a).poll_shutdown(cx),
            Either::B(b) => Pin::new(b).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Either::A(a) => Pin::new(a).poll_write_vectored(cx, bufs),
            Either::B(b) => Pin::new(b).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Either::A(a) => a.is_write_vectored(),
            Either::B(b) => b.is_write_vectored(),
        }
    }
}

/// Who is on the other end of a director's connection.
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The identity in its verified certificate; `None` in plaintext mode.
    pub identity: Option<PeerIdentity>,
}

/// An accepted connection of the director.
pub(crate) struct ServerConn {
    io: Either<tokio_rustls::server::TlsStream<TcpStream>, TcpStream>,
    info: PeerInfo,
    /// The connection's place under the director's `max_connections`.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsyncRead for ServerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connected for ServerConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

/// Told the reason (a fixed label) of each connection refused before any call: a failed or
/// timed-out TLS handshake, or a plaintext peer of a TLS server.
pub(crate) type RefusalHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Accepts connections on `listener`, doing the TLS handshake (if `tls`) off the accept loop.
/// A refused handshake is logged with its reason and never reaches the service. At most
/// `max_connections` are open at once (handshakes included); one more is closed at once, with a
/// warning. The listener closes when the returned stream is dropped (the server stopped).
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    max_connections: usize,
    refused: RefusalHook,
) -> ReceiverStream<io::Result<ServerConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, addr) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    peer = %addr,
                    limit = max_connections,
                    "refused a connection: the director serves `DirectorOptions::max_connections` \
                     connections already; raise it if this is expected"
                );
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let conn_tx = tx.clone();
            let acceptor = acceptor.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                let conn = match acceptor {
                    None => {
                        let head = tokio::time::timeout(HANDSHAKE_TIMEOUT, peek_is_tls(&tcp));
                        if let Ok(Some(true)) = head.await {
                            tracing::warn!(
                                peer = %addr,
                                "a peer connects with TLS, and this director runs in plaintext \
                                 (`--plaintext`), so the peer fails; start the director with its \
                                 certificates (`--certs DIR`), or, for development only, connect \
                                 the peer with `--plaintext` too"
                            );
                        }
                        ServerConn {
                            io: Either::B(tcp),
                            info: PeerInfo {
                                addr,
                                identity: None,
                            },
                            _permit: permit,
                        }
                    }
                    Some(acceptor) => {
                        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
                        let plaintext = tokio::time::timeout_at(deadline, plaintext_peer(&tcp));
                        if let Ok(Some(reason)) = plaintext.await {
                            tracing::warn!(peer = %addr, %reason, "refused a connection");
                            refused("plaintext_peer");
                            refuse_plaintext(tcp).await;
                            return;
                        }
                        let handshake = acceptor.accept(tcp).into_fallible();
                        match tokio::time::timeout_at(deadline, handshake).await {
                            Ok(Ok(tls)) => {
                                let identity = tls
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .and_then(|c| identity_of(c));
                                ServerConn {
                                    io: Either::A(tls),
                                    info: PeerInfo { addr, identity },
                                    _permit: permit,
                                }
                            }
                            Ok(Err((e, tcp))) => {
                                let reason =
                                    crate::tls::explain_error(&e).unwrap_or_else(|| e.to_string());
                                tracing::warn!(peer = %addr, %reason, "refused a TLS connection");
                                refused(crate::director::admin::tls_failure_reason(&e));
                                // The alert is written; closing with the peer's bytes unread
                                // would reset the connection, and the reset can overtake it.
                                drain_until_closed(tcp).await;
                                return;
                            }
                            Err(_) => {
                                tracing::warn!(peer = %addr, "refused a connection: the TLS handshake took over 10 s");
                                refused("timeout");
                                return;
                            }
                        }
                    }
                };
                let _ = conn_tx.send(Ok(conn)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Whether the first bytes look like the header of a TLS record: a content type (20 to 24)
/// and a major version 3. `None` until three bytes are in.
fn looks_like_tls(head: &[u8]) -> Option<bool> {
    match head {
        [kind, 3, minor, ..] => Some((20..=24).contains(kind) && *minor <= 4),
        [_, _, _, ..] => Some(false),
        _ => None,
    }
}

/// What a TLS director says of a peer that speaks plaintext (its first bytes, peeked, are not
/// a TLS record), or `None` for a TLS peer (or one that closed without a word). Waits for the
/// peer's first bytes: call it under the handshake's deadline.
async fn plaintext_peer(tcp: &TcpStream) -> Option<String> {
    match peek_is_tls(tcp).await {
        Some(false) => Some(
            "the peer speaks plaintext (it runs with `--plaintext` or \
             `TlsConfig::insecure_plaintext`), and this director requires TLS; give the peer \
             the federation's certificates (`--certs DIR`)"
                .into(),
        ),
        _ => None,
    }
}

/// Whether the peer's first bytes (peeked, left for the reader) are a TLS record; `None` if it
/// closed first. Waits for three bytes: call it under a deadline.
async fn peek_is_tls(tcp: &TcpStream) -> Option<bool> {
    let mut head = [0u8; 3];
    loop {
        match tcp.peek(&mut head).await {
            Ok(n) if n < head.len() && n > 0 => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(n) => return looks_like_tls(&head[..n]),
            Err(_) => return None,
        }
    }
}

/// Answers a plaintext peer with a TLS alert record (fatal `decode_error`, what rustls sends
/// for bytes that are not TLS), then reads and drops what the peer still sends until it closes
/// (at most 2 s). Closing at once could reset the connection under the peer's next write
/// before it read the alert; this way its HTTP/2 client reads a TLS record and [`Sniffed`]
/// tells it that the director speaks TLS.
async fn refuse_plaintext(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
    if tcp.write_all(&ALERT).await.is_err() {
        return;
    }
    drain_until_closed(tcp).await;
}

/// Reads and drops what the peer still sends until it closes (at most 2 s), so that a refusal
/// (a TLS alert) already written is read by the peer rather than overtaken by a reset, which
/// closing with unread bytes would send.
async fn drain_until_closed(mut tcp: TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// The director's reply to this side's first bytes shows that one side speaks TLS and the
/// other does not.
fn mismatch(director_tls: bool) -> String {
    if director_tls {
        "the director speaks TLS, but this side connects in plaintext (`--plaintext`, \
         `TlsConfig::insecure_plaintext`); drop `--plaintext` and give the federation's \
         certificates (`--certs DIR`, `TlsConfig::from_dir(DIR, ..)`)"
            .into()
    } else {
        "the director speaks plaintext (it runs with `--plaintext`), but this side connects \
         with TLS; start the director with its certificates (`--certs DIR`), or, for \
         development only, connect with `--plaintext` (`TlsConfig::insecure_plaintext`) too"
            .into()
    }
}

/// A client's TCP stream that checks the director's first bytes: a TLS record where this side
/// expects plaintext HTTP/2, or something else where it expects TLS, fails the read at once
/// with an error that says so (and notes it in the [`TlsProbe`]), instead of an HTTP/2 or TLS
/// parse error. A write that fails before the first bytes were read (the director closed the
/// connection after its answer) looks for that answer too.
struct Sniffed {
    io: TcpStream,
    expect_tls: bool,
    head: Vec<u8>,
    checked: bool,
    probe: TlsProbe,
}

impl Sniffed {
    fn new(io: TcpStream, expect_tls: bool, probe: TlsProbe) -> Self {
        Sniffed {
            io,
            expect_tls,
            head: Vec::with_capacity(3),
            checked: false,
            probe,
        }
    }

    /// Takes in the first bytes of `new`; the error to return instead if they show a mismatch.
    fn inspect(&mut self, new: &[u8]) -> Option<io::Error> {
        let take = new.len().min(3 - self.head.len());
        self.head.extend_from_slice(&new[..take]);
        let tls = looks_like_tls(&self.head)?;
        self.checked = true;
        if tls == self.expect_tls {
            return None;
        }
        let reason = mismatch(tls);
        self.probe.set(reason.clone());
        Some(io::Error::new(io::ErrorKind::InvalidData, reason))
    }

    /// After a failed write: reads (without waiting) what the director sent before it closed.
    fn after_write<T>(&mut self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if self.checked || !matches!(r, Poll::Ready(Err(_))) {
            return r;
        }
        let mut buf = [0u8; 3];
        let want = 3 - self.head.len();
        match self.io.try_read(&mut buf[..want]) {
            Ok(n) if n > 0 => match self.inspect(&buf[..n]) {
                Some(e) => Poll::Ready(Err(e)),
                None => r,
            },
            _ => r,
        }
    }
}

impl AsyncRead for Sniffed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.checked {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let room = buf.remaining();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            if new.is_empty() && room > 0 {
                this.checked = true;
            } else if let Some(e) = this.inspect(new) {
                return Poll::Ready(Err(e));
            }
        }
        r
    }
}

impl AsyncWrite for Sniffed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(r)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.after_write(r)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(r)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Splits `HOST:PORT` (or `[v6]:PORT`) into the host and the whole address.
pub(crate) fn host_of(addr: &str) -> Result<&str> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| Error::Address {
        addr: addr.to_string(),
    })?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(Error::Address {
            addr: addr.to_string(),
        });
    }
    Ok(host.trim_start_matches('[').trim_end_matches(']'))
}

/// Connects to the director at `addr` (TLS per `tls`). The TCP and TLS handshakes happen now,
/// so an unreachable director or a refused director certificate fails here.
///
/// # Errors
/// [`Error::Address`], [`Error::TlsConfig`], [`Error::Tls`] (with the reason) or
/// [`Error::Connect`].
pub(crate) async fn connect(addr: &str, tls: &TlsConfig) -> Result<(Channel, TlsProbe)> {
    connect_with_keepalive(addr, tls, KEEPALIVE).await
}

/// The default HTTP/2 keepalive of a connection to the director (see
/// [`connect_with_keepalive`]).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(10);

/// As [`connect`], pinging the director every `keepalive` (HTTP/2 PING) and closing the
/// connection when a ping has no answer within twice that: a half-open connection (the
/// director's host vanished without closing it) is noticed within three times `keepalive`.
pub(crate) async fn connect_with_keepalive(
    addr: &str,
    tls: &TlsConfig,
    keepalive: Duration,
) -> Result<(Channel, TlsProbe)> {
    let probe = TlsProbe::default();
    let seen = probe.clone();
    let host = host_of(addr)?;
    let client_tls = tls.client_config(host)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| Error::Address {
            addr: addr.to_string(),
        })?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive * 2)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME);
    let target = addr.to_string();
    let connector = tower::service_fn(move |_: Uri| {
        let client_tls = client_tls.clone();
        let target = target.clone();
        let probe = seen.clone();
        async move {
            let tcp = TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            let io = match client_tls {
                Some((config, name)) => {
                    let tcp = Sniffed::new(tcp, true, probe.clone());
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .inspect_err(|e| probe.note(e))?;
                    Either::A(tls)
                }
                None => Either::B(Sniffed::new(tcp, false, probe.clone())),
            };
            Ok::<_, io::Error>(TokioIo::new(Watched { io, probe }))
        }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(
            |e| match probe.reason().or_else(|| crate::tls::explain_error(&e)) {
                Some(reason) => Error::Tls {
                    peer: addr.to_string(),
                    reason,
                },
                None => Error::Connect {
                    addr: addr.to_string(),
                    reason: error_chain(&e),
                },
            },
        )
        .map(|channel| (channel, probe))
}

/// Remembers the TLS failure of a client connection. In TLS 1.3 the server verifies the
/// client's certificate after the client considers the handshake done, so its refusal (an
/// alert) arrives on a later read, inside tonic's connection task, which reports only
/// "transport error"; the probe keeps the reason for the error the caller sees.
#[derive(Clone, Default, Debug)]
pub(crate) struct TlsProbe(Arc<std::sync::Mutex<Option<String>>>);

impl TlsProbe {
    /// Keeps `reason`, unless a reason is kept already.
    fn set(&self, reason: String) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(reason);
    }

    /// Keeps the explanation of `e`, if it is a TLS failure (and no reason is kept already).
    fn note(&self, e: &io::Error) {
        if let Some(reason) = crate::tls::explain_error(e) {
            self.set(reason);
        }
    }

    /// Notes the error of a finished I/O call and passes the result on.
    fn watch<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &r {
            self.note(e);
        }
        r
    }

    /// The TLS failure seen on this connection, explained.
    pub(crate) fn reason(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A client stream whose I/O errors are shown to a [`TlsProbe`].
struct Watched<T> {
    io: T,
    probe: TlsProbe,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.probe.watch(Pin::new(&mut this.io).poll_read(cx, buf))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.probe.watch(Pin::new(&mut this.io).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.probe.watch(Pin::new(&mut this.io).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.probe
            .watch(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}
