//! The `tcp` host interface: a granted `tcp://host:port` connection as a resource the
//! plugin reads and writes, with TLS (from the start, or after STARTTLS) done by the host.
//! The plugin never holds a socket.

use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Network;
use crate::bindings::{NetworkError, TlsMode};
use crate::registry::NetworkCounters;
use rapport_net::{Host, Origin, Scheme};

/// Largest single read handed to the plugin.
const MAX_READ: u32 = 64 << 10;
/// Connections one run may hold open at once: a line protocol needs one or two, and each
/// holds a socket of the daemon's.
const MAX_OPEN_CONNECTIONS: usize = 16;

/// An open connection held in the run's resource table.
pub struct PluginStream {
    connection: Connection,
    origin: Origin,
    server_name: ServerName<'static>,
    mode: TlsMode,
    tls: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for PluginStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginStream").field("origin", &self.origin).field("mode", &self.mode).finish_non_exhaustive()
    }
}

enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A failed TLS upgrade consumed the socket.
    Closed,
}

impl Network {
    /// Opens a granted connection, with TLS from the start when `mode` asks for it.
    pub async fn connect(&mut self, host: &str, port: u16, mode: TlsMode) -> Result<PluginStream, NetworkError> {
        let parsed = Host::parse(host).ok_or_else(|| NetworkError::InvalidRequest(format!("`{host}` is not a host name or address")))?;
        let origin = Origin { scheme: Scheme::Tcp, host: parsed, port };
        self.check(&origin).map_err(NetworkError::Denied)?;
        if self.open_connections >= MAX_OPEN_CONNECTIONS {
            return Err(NetworkError::InvalidRequest(format!(
                "a run may hold at most {MAX_OPEN_CONNECTIONS} connections open; drop one before opening {origin}"
            )));
        }
        let addresses = self.resolve(&origin).await?;
        self.wait_for_rate_limit().await;
        let timeout = self.shared.config.connect_timeout;
        let connect = async {
            let mut last = None;
            for address in addresses {
                match TcpStream::connect(address).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last = Some(error),
                }
            }
            Err(last.map_or_else(|| format!("{host} has no address"), |e| e.to_string()))
        };
        let socket = match tokio::time::timeout(timeout, connect).await {
            Err(_) => return Err(NetworkError::Timeout(format!("connecting to {origin} took longer than {} s", timeout.as_secs()))),
            Ok(Err(error)) => return Err(NetworkError::Connect(format!("cannot connect to {origin}: {error}"))),
            Ok(Ok(socket)) => socket,
        };
        // Line protocols exchange small messages; Nagle's delay would dominate them.
        let _ = socket.set_nodelay(true);
        self.counters.tcp_connections += 1;
        let server_name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
            .map_err(|_| NetworkError::InvalidRequest(format!("`{host}` is not a valid TLS server name")))?;
        let mut stream = PluginStream {
            connection: Connection::Plain(socket),
            origin,
            server_name,
            mode,
            tls: TlsConnector::from(self.shared.tls.clone()),
            timeout: self.shared.config.request_timeout,
        };
        if mode == TlsMode::Tls {
            stream.handshake(timeout).await?;
        }
        // Counted once it is the plugin's: a failed handshake leaves no place taken.
        self.open_connections += 1;
        tracing::debug!(destination = %self.shown(&stream.origin), tls = ?mode, "tcp connection opened");
        Ok(stream)
    }

    /// Timeouts for reads and writes, and the connect timeout for a STARTTLS handshake.
    pub fn connect_timeout(&self) -> Duration {
        self.shared.config.connect_timeout
    }
}

impl PluginStream {
    async fn handshake(&mut self, timeout: Duration) -> Result<(), NetworkError> {
        let Connection::Plain(socket) = std::mem::replace(&mut self.connection, Connection::Closed) else {
            return Err(NetworkError::InvalidRequest(format!("the connection to {} is already secured or closed", self.origin)));
        };
        let origin = &self.origin;
        let handshake = self.tls.connect(self.server_name.clone(), socket);
        let tls = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| NetworkError::Timeout(format!("the TLS handshake with {origin} took longer than {} s", timeout.as_secs())))?
            .map_err(|e| NetworkError::Connect(format!("TLS handshake with {origin} failed: {e}")))?;
        self.connection = Connection::Tls(Box::new(tls));
        Ok(())
    }

    /// Upgrades a `starttls` connection once the protocol has agreed to it.
    pub async fn start_tls(&mut self, timeout: Duration) -> Result<(), NetworkError> {
        if self.mode != TlsMode::Starttls {
            return Err(NetworkError::InvalidRequest(format!(
                "start-tls needs a connection opened with tls-mode starttls; {} was opened with {:?}",
                self.origin, self.mode
            )));
        }
        self.handshake(timeout).await
    }

    /// Reads up to `max` bytes (an empty answer: the peer closed the connection).
    pub async fn read(&mut self, max: u32, counters: &mut NetworkCounters) -> Result<Vec<u8>, NetworkError> {
        if max == 0 {
            return Err(NetworkError::InvalidRequest("read needs max > 0".to_owned()));
        }
        let mut buffer = vec![0; max.min(MAX_READ) as usize];
        let read = match &mut self.connection {
            Connection::Plain(socket) => tokio::time::timeout(self.timeout, socket.read(&mut buffer)).await,
            Connection::Tls(tls) => tokio::time::timeout(self.timeout, tls.read(&mut buffer)).await,
            Connection::Closed => return Err(self.closed()),
        };
        let n = self.finish(read, "read")?;
        buffer.truncate(n);
        counters.bytes_received += n as u64;
        Ok(buffer)
    }

    /// Writes all of `data`.
    pub async fn write(&mut self, data: &[u8], counters: &mut NetworkCounters) -> Result<(), NetworkError> {
        let written = match &mut self.connection {
            Connection::Plain(socket) => tokio::time::timeout(self.timeout, socket.write_all(data)).await,
            Connection::Tls(tls) => {
                tokio::time::timeout(self.timeout, async {
                    tls.write_all(data).await?;
                    tls.flush().await
                })
                .await
            }
            Connection::Closed => return Err(self.closed()),
        };
        self.finish(written, "write")?;
        counters.bytes_sent += data.len() as u64;
        Ok(())
    }

    fn finish<T>(&self, result: Result<std::io::Result<T>, tokio::time::error::Elapsed>, what: &str) -> Result<T, NetworkError> {
        match result {
            Err(_) => Err(NetworkError::Timeout(format!(
                "{what} on {} took longer than {} s (plugins.network.request_timeout_secs in rapport.toml)",
                self.origin,
                self.timeout.as_secs()
            ))),
            Ok(Err(error)) => Err(NetworkError::Io(format!("{what} on {}: {error}", self.origin))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    fn closed(&self) -> NetworkError {
        NetworkError::Io(format!("the connection to {} is closed", self.origin))
    }
}
