//! A TCP proxy a test owns, standing for the network route to PostgreSQL. It forwards bytes until
//! the test cuts the route (every open connection is dropped mid-stream and every new one is closed
//! as soon as it is accepted) or stalls it (nothing moves and nothing closes, as when a route goes
//! silent), until the route is restored. The port stays the same throughout, as a database's address
//! does across a restart or a failover.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Up,
    Cut,
    Stalled,
}

pub struct Proxy {
    pub port: u16,
    route: watch::Sender<Route>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (route, _) = watch::channel(Route::Up);
        let state = route.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut route = state.subscribe();
                tokio::spawn(async move {
                    let mut client = client;
                    let now = *route.borrow_and_update();
                    match now {
                        // The route is down: the peer sees its connection closed at once.
                        Route::Cut => return,
                        // Silent: hold the connection, answer nothing, until the route changes.
                        Route::Stalled => {
                            until(&mut route, |r| r != Route::Stalled).await;
                            return;
                        }
                        Route::Up => {}
                    }
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        now = until(&mut route, |r| r != Route::Up) => {
                            if now == Route::Stalled {
                                // Keep both ends open and quiet until the route changes again.
                                until(&mut route, |r| r != Route::Stalled).await;
                            }
                        }
                    }
                    // Dropping both ends cuts the connection wherever it was.
                });
            }
        });
        Self { port, route, task }
    }

    /// Cuts the route: open connections drop now, new ones are closed on arrival.
    pub fn cut(&self) {
        self.route.send_replace(Route::Cut);
    }

    /// Stalls the route: nothing gets through, nothing is closed (a silent network).
    pub fn stall(&self) {
        self.route.send_replace(Route::Stalled);
    }

    /// Restores the route (connections held by a stall are closed).
    pub fn restore(&self) {
        self.route.send_replace(Route::Up);
    }
}

/// Waits until the route is in a state `wanted` accepts, and returns it (`Cut` once the proxy is
/// gone).
async fn until(route: &mut watch::Receiver<Route>, wanted: impl Fn(Route) -> bool) -> Route {
    match route.wait_for(|r| wanted(*r)).await {
        Ok(now) => *now,
        Err(_) => Route::Cut,
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
