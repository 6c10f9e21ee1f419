//! Helpers of the in-process tests: a director and envoys on one tokio runtime, over real mutual
//! TLS on 127.0.0.1, and a raw gRPC client that speaks the public wire types, so that a test
//! can play a modified envoy or call the director as any certificate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flspec_federated::certs::{FederationSpec, create_federation};
use flspec_federated::codec::PostcardCodec;
use flspec_federated::wire::{DirectorMsg, EnvoyMsg, FlowInfo, PROTOCOL_VERSION};
use flspec_federated::{
    Director, DirectorOptions, Envoy, EnvoyOptions, EnvoyState, FederatedRuntime, Registry,
    TlsConfig,
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

/// A federation on one machine: its certificates, a tokio runtime, a director.
pub struct Fed {
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
    pub director: Option<Director>,
    pub addr: String,
}

/// Makes the certificates (clients `client` and `other`) and starts a director with `options`
/// and `registry`.
pub fn start(envoys: &[&str], options: DirectorOptions, registry: Registry) -> Fed {
    let dir = tempfile::tempdir().expect("temp dir");
    create_federation(
        dir.path(),
        &FederationSpec {
            director_hosts: vec!["127.0.0.1".into()],
            envoys: envoys.iter().map(|s| s.to_string()).collect(),
            clients: vec!["client".into(), "other".into()],
            days: 30,
            ..FederationSpec::default()
        },
    )
    .expect("certificates are created");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio starts");
    let tls = TlsConfig::from_dir(dir.path(), "director").expect("director certificate");
    let director = runtime
        .block_on(Director::start("127.0.0.1:0", tls, registry, options))
        .expect("the director starts");
    let addr = director.local_addr().to_string();
    Fed {
        dir,
        runtime,
        director: Some(director),
        addr,
    }
}

impl Fed {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The certificate files of `who` (`client`, `clients/other`, `envoys/NAME`).
    pub fn files(&self, who: &str) -> (PathBuf, PathBuf) {
        (
            self.path().join(format!("{who}.pem")),
            self.path().join(format!("{who}.key")),
        )
    }

    /// Starts a real envoy (no reconnection) on the federation's runtime.
    pub fn envoy(&self, name: &str, registry: Registry) -> tokio::task::JoinHandle<()> {
        let tls = TlsConfig::from_dir(self.path(), &format!("envoys/{name}")).expect("envoy cert");
        let envoy = Envoy::new(self.addr.clone(), tls, name, registry).options(EnvoyOptions {
            reconnect: false,
            ..EnvoyOptions::default()
        });
        self.runtime.spawn(async move {
            let _ = envoy.run().await;
        })
    }

    /// A blocking client with the certificate of `who` (`client` or `clients/other`).
    pub fn client(&self, who: &str) -> FederatedRuntime {
        FederatedRuntime::connect(
            &self.addr,
            TlsConfig::from_dir(self.path(), who).expect("client certificate"),
        )
        .expect("the client connects")
        .step_timeout(Duration::from_secs(30))
    }

    /// A raw gRPC channel with the certificate of `who`.
    pub fn channel(&self, who: &str) -> Result<Channel, String> {
        let (cert, key) = self.files(who);
        let ca = self.path().join("ca.pem");
        self.runtime
            .block_on(raw_channel(&self.addr, &ca, &cert, &key))
    }

    /// Shuts the director down.
    pub fn shutdown(&mut self) -> Duration {
        let began = Instant::now();
        if let Some(d) = self.director.take() {
            self.runtime.block_on(d.shutdown());
        }
        began.elapsed()
    }
}

/// Waits (at most 20 s) until `names` are online (`true`) or offline (`false`).
pub fn wait_envoys(client: &FederatedRuntime, names: &[&str], online: bool) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let envoys = client.envoys().expect("the director lists envoys");
        let ok = names.iter().all(|n| {
            envoys
                .iter()
                .any(|e| e.name == *n && (e.state != EnvoyState::Offline) == online)
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < end,
            "envoys {names:?} not {} within 20 s: {envoys:?}",
            if online { "online" } else { "offline" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gRPC channel to the director over mutual TLS with the given files, built from rustls
/// directly (as a modified participant would).
pub async fn raw_channel(
    addr: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Channel, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(ca)?) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| e.to_string())?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let target = addr.to_string();
    let connector = tower::service_fn(move |_: Uri| {
        let config = config.clone();
        let target = target.clone();
        async move {
            let tcp = TcpStream::connect(&target).await?;
            let name = ServerName::try_from("127.0.0.1").expect("an IP address");
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("{e:?}"))
}

/// One unary call of the director's service (`method`: `Status`, `Cancel`, ...).
pub async fn unary<Req, Resp>(
    channel: Channel,
    method: &'static str,
    request: Req,
) -> Result<Resp, tonic::Status>
where
    Req: serde::Serialize + Send + Sync + 'static,
    Resp: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path =
        PathAndQuery::try_from(format!("/flspec.v1.Director/{method}")).expect("a valid path");
    grpc.unary(
        tonic::Request::new(request),
        path,
        PostcardCodec::<Req, Resp>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The first message of a `Watch` stream (or its refusal).
pub async fn watch_first(
    channel: Channel,
    run_id: &str,
) -> Result<Option<flspec_federated::wire::RunUpdate>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::from_static("/flspec.v1.Director/Watch");
    let mut stream =
        grpc
            .server_streaming(
                tonic::Request::new(flspec_federated::wire::WatchRequest {
                    run_id: run_id.to_string(),
                }),
                path,
                PostcardCodec::<
                    flspec_federated::wire::WatchRequest,
                    flspec_federated::wire::RunUpdate,
                >::default(),
            )
            .await?
            .into_inner();
    stream.message().await
}

/// A hand-driven envoy session: what a modified envoy can send, with the public wire types.
pub struct FakeSession {
    pub out: UnboundedSender<EnvoyMsg>,
    pub inbound: tonic::Streaming<DirectorMsg>,
}

impl FakeSession {
    /// Opens a session on `channel`, says `Hello` as `name` with `flows`, and waits for the
    /// director's welcome (or its refusal). Sends heartbeats every 200 ms.
    pub async fn open(
        channel: Channel,
        name: &str,
        flows: Vec<FlowInfo>,
    ) -> Result<FakeSession, tonic::Status> {
        let (out, rx) = tokio::sync::mpsc::unbounded_channel();
        out.send(EnvoyMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            flows,
            collaborators: vec![name.to_string()],
        })
        .expect("the receiver is alive");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = PathAndQuery::from_static("/flspec.v1.Director/Session");
        let mut inbound = grpc
            .streaming(
                tonic::Request::new(UnboundedReceiverStream::new(rx)),
                path,
                PostcardCodec::<EnvoyMsg, DirectorMsg>::default(),
            )
            .await?
            .into_inner();
        match inbound.message().await? {
            Some(DirectorMsg::Welcome { .. }) => {}
            other => panic!("expected a welcome, got {other:?}"),
        }
        let beat = out.clone();
        tokio::spawn(async move {
            while beat.send(EnvoyMsg::Heartbeat).is_ok() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(FakeSession { out, inbound })
    }

    /// The next task the director sends (skipping other messages), within 20 s.
    pub async fn next_task(&mut self) -> flspec_federated::wire::Task {
        let deadline = Duration::from_secs(20);
        loop {
            let msg = tokio::time::timeout(deadline, self.inbound.message())
                .await
                .expect("a task within 20 s")
                .expect("the session is alive")
                .expect("the session is open");
            if let DirectorMsg::Task(task) = msg {
                return task;
            }
        }
    }
}

/// The wire description of flow `F`.
pub fn flow_info<F: flspec::Flow>() -> FlowInfo {
    FlowInfo {
        name: F::NAME.to_string(),
        fingerprint: F::graph().fingerprint(),
    }
}
