//! The TCP acceptor the server listens with: poem's, with Nagle's algorithm
//! turned off on every connection, so a streamed answer's small writes go out
//! at once instead of waiting for the client to acknowledge the one before
//! (a delayed ACK costs about 40 ms per stalled write).

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::TcpStream;

pub struct NoDelayAcceptor(pub TcpAcceptor);

impl Acceptor for NoDelayAcceptor {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let accepted = self.0.accept().await?;
        // A connection that cannot take the option still serves, only slower.
        if let Err(err) = accepted.0.set_nodelay(true) {
            tracing::debug!(error = %err, "could not turn off Nagle's algorithm");
        }
        Ok(accepted)
    }
}
