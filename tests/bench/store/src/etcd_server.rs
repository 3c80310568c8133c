//! A throwaway etcd: started on free loopback ports with its data in the benchmark's temp
//! dir, killed by PID at the end. Without the `etcd` feature there is none.

use std::path::Path;

use crate::target::Target;

/// A running etcd, or nothing without the `etcd` feature.
pub(crate) struct EtcdServer {
    #[cfg(feature = "etcd")]
    child: std::process::Child,
}

impl EtcdServer {
    /// Kills etcd by PID and reaps it.
    pub(crate) fn stop(self) {
        #[cfg(feature = "etcd")]
        {
            let mut child = self.child;
            eprintln!("stopping etcd (pid {})", child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(not(feature = "etcd"))]
pub(crate) async fn start(_scratch: &Path) -> Option<(EtcdServer, Target)> {
    eprintln!("built without the `etcd` feature: measuring kite-store only");
    None
}

#[cfg(feature = "etcd")]
pub(crate) async fn start(scratch: &Path) -> Option<(EtcdServer, Target)> {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use crate::fail;

    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|e| fail(&format!("finding a free port: {e}")))
    };
    let (client_port, peer_port) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let data_dir = scratch.join("etcd");
    let log = std::fs::File::create(scratch.join("etcd.log"))
        .unwrap_or_else(|e| fail(&format!("etcd log: {e}")));
    let log_err = log
        .try_clone()
        .unwrap_or_else(|e| fail(&format!("etcd log: {e}")));
    let child = Command::new(std::env::var("ETCD").unwrap_or_else(|_| "etcd".into()))
        .arg("--name=bench")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=bench={peer_url}"))
        .arg("--initial-cluster-state=new")
        .arg("--logger=zap")
        .arg("--log-level=warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("starting etcd (apt-get install etcd-server): {e}")));
    eprintln!(
        "etcd: pid {} on {client_url}, data in {}",
        child.id(),
        data_dir.display()
    );
    let server = EtcdServer { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut client) = etcd_client::Client::connect([client_url.as_str()], None).await
            && client.status().await.is_ok()
        {
            return Some((server, Target::Etcd(Box::new(client))));
        }
        if Instant::now() > deadline {
            server.stop();
            fail("etcd did not become ready in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
