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
