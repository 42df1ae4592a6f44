//! The floor of a proxy built the way the service is: one tokio worker relaying the bytes of
//! each loopback TCP connection to an upstream, with no HTTP work at all. The benchmarks run
//! it beside the HTTP endpoint so the cost of one more hop on this machine is measured with
//! the service's own runtime, not only with socat's fork-per-connection.
//!
//! `cargo run --release --example tcp_relay -- UPSTREAM_HOST:PORT` prints the port it listens on.

use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let upstream = std::env::args().nth(1).ok_or_else(|| std::io::Error::other("usage: tcp_relay UPSTREAM_HOST:PORT"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(relay(upstream))
}

async fn relay(upstream: String) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let (mut inbound, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
            let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}
