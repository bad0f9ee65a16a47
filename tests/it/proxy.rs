//! A TCP proxy a test owns, standing for the network route to PostgreSQL: it forwards bytes until the
//! test cuts the route, and then every open connection is dropped mid-stream and every new one is
//! closed as soon as it is accepted, until the route is restored. The port stays the same throughout,
//! as a database's address does across a restart or a failover.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let route = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut up = route.subscribe();
                if !*up.borrow() {
                    // The route is down: the peer sees its connection closed at once.
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = up.wait_for(|up| !up) => {}
                    }
                    // Dropping both ends cuts the connection wherever it was.
                });
            }
        });
        Self { port, up, task }
    }

    /// Cuts the route: open connections drop now, new ones are closed on arrival.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Restores the route.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
