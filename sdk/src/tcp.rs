//! Outbound TCP through the host, for line protocols such as IMAP: only to destinations
//! granted as `tcp://host:port`; TLS is done by the host.

use crate::NetworkError;
use crate::bindings::rapport::connector::tcp as wit;

pub use wit::TlsMode;

/// An open connection; dropping it closes it.
#[derive(Debug)]
pub struct Connection(wit::Connection);

impl Connection {
    /// Connects to `host:port`, with TLS from the start for [`TlsMode::Tls`].
    pub fn open(host: &str, port: u16, tls: TlsMode) -> Result<Self, NetworkError> {
        wit::connect(host, port, tls).map(Self).map_err(NetworkError::from)
    }

    /// Reads up to `max` bytes; an empty answer means the peer closed the connection.
    pub fn read(&mut self, max: u32) -> Result<Vec<u8>, NetworkError> {
        self.0.read(max).map_err(NetworkError::from)
    }

    /// Writes all of `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), NetworkError> {
        self.0.write(data).map_err(NetworkError::from)
    }

    /// Switches a [`TlsMode::Starttls`] connection to TLS once the protocol agreed to it.
    pub fn start_tls(&mut self) -> Result<(), NetworkError> {
        self.0.start_tls().map_err(NetworkError::from)
    }
}

/// Longest line [`Stream::read_line`] accepts.
const MAX_LINE: usize = 1 << 20;
/// Bytes asked for per read.
const READ_CHUNK: u32 = 64 << 10;

/// A buffered connection for line protocols (IMAP, SMTP, POP3): lines ending in CRLF or
/// LF, and exact byte counts (IMAP literals).
///
/// ```ignore
/// let mut imap = Stream::open("imap.example.com", 993, TlsMode::Tls)?;
/// let greeting = imap.read_line()?;
/// imap.write_line("a1 LOGIN user password")?;
/// ```
#[derive(Debug)]
pub struct Stream {
    connection: Connection,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
}

impl Stream {
    /// Connects to `host:port`, with TLS from the start for [`TlsMode::Tls`].
    pub fn open(host: &str, port: u16, tls: TlsMode) -> Result<Self, NetworkError> {
        Connection::open(host, port, tls).map(Self::from)
    }

    /// Reads more bytes into the buffer; `false` when the peer has closed the connection.
    fn fill(&mut self) -> Result<bool, NetworkError> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let data = self.connection.read(READ_CHUNK)?;
        self.buffer.extend_from_slice(&data);
        Ok(!data.is_empty())
    }

    /// The next line without its line ending; `None` once the peer has closed the
    /// connection (a last line without an ending is returned first).
    pub fn read_line(&mut self) -> Result<Option<String>, NetworkError> {
        loop {
            if let Some(end) = self.buffer[self.start..].iter().position(|b| *b == b'\n') {
                let line = &self.buffer[self.start..self.start + end];
                let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
                self.start += end + 1;
                return Ok(Some(line));
            }
            if self.buffer.len() - self.start > MAX_LINE {
                return Err(NetworkError::Io(format!("the peer sent a line longer than {MAX_LINE} bytes")));
            }
            if !self.fill()? {
                if self.start == self.buffer.len() {
                    return Ok(None);
                }
                let line = String::from_utf8_lossy(&self.buffer[self.start..]).into_owned();
                self.start = self.buffer.len();
                return Ok(Some(line));
            }
        }
    }

    /// Exactly `count` bytes (an IMAP literal); fails if the peer closes before.
    pub fn read_exact(&mut self, count: usize) -> Result<Vec<u8>, NetworkError> {
        while self.buffer.len() - self.start < count {
            if !self.fill()? {
                return Err(NetworkError::Io(format!(
                    "the peer closed the connection {} bytes short",
                    count - (self.buffer.len() - self.start)
                )));
            }
        }
        let bytes = self.buffer[self.start..self.start + count].to_vec();
        self.start += count;
        Ok(bytes)
    }

    /// Writes `line` followed by CRLF.
    pub fn write_line(&mut self, line: &str) -> Result<(), NetworkError> {
        let mut data = Vec::with_capacity(line.len() + 2);
        data.extend_from_slice(line.as_bytes());
        data.extend_from_slice(b"\r\n");
        self.connection.write(&data)
    }

    /// Writes `data` as it is.
    pub fn write(&mut self, data: &[u8]) -> Result<(), NetworkError> {
        self.connection.write(data)
    }

    /// Switches to TLS after the protocol's STARTTLS answer; refused when the peer already
    /// sent more (bytes sent in the clear must not be read as if they came over TLS).
    pub fn start_tls(&mut self) -> Result<(), NetworkError> {
        if self.start < self.buffer.len() {
            return Err(NetworkError::Io("the peer sent data after agreeing to STARTTLS; refusing to upgrade".to_owned()));
        }
        self.buffer.clear();
        self.start = 0;
        self.connection.start_tls()
    }
}

impl From<Connection> for Stream {
    fn from(connection: Connection) -> Self {
        Self { connection, buffer: Vec::new(), start: 0 }
    }
}
