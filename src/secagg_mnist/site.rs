//! A collaborator's private state: its share of MNIST, its model, its SecAgg client for the
//! current round, and what it measured. Never serialized, never sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use flspec::Dropout;
use flspec::secagg;
use flspec_federated::signing::{SigningCredentials, SigningTrust};

use flspec_tch::datasets::mnist::Mnist;
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::{Batches, TrainConfig};

use super::update::Measurements;

/// The private state of one collaborator.
pub struct Site {
    name: String,
    pub(crate) train: Batches,
    pub(crate) test: Batches,
    pub(crate) net: Net,
    pub(crate) config: TrainConfig,
    /// This round's SecAgg client (fresh keys every round).
    pub(crate) client: Option<secagg::Client>,
    /// This round's contribution, before masking.
    pub(crate) contribution: Vec<f32>,
    /// This round's contribution as ring elements, under distributed DP.
    pub(crate) ring_contribution: Vec<u32>,
    /// This round's DP noise, drawn on another thread while the collaborator trains.
    pub(crate) noise: Option<std::thread::JoinHandle<Result<super::private_update::Noise, String>>>,
    pub(crate) measured: Measurements,
    /// The SecAgg signing key, its certificate and the CA to check the peers' certificates
    /// (malicious-secure SecAgg); `None` until [`Site::with_signing`].
    pub(crate) signing: Option<SigningKeys>,
    /// The peers' signing certificates, as relayed at the run's start (malicious-secure).
    pub(crate) peers: PeerKeys,
    /// The SecAgg round (session, round) this collaborator is in, and the last one it revealed
    /// its shares for: a round started over after a crash of the director is one it must not
    /// take part in again if it revealed its shares in it already.
    pub(crate) round_in_progress: Option<([u8; 32], u64)>,
    pub(crate) revealed: Option<([u8; 32], u64)>,
    drop_at: Option<String>,
    dropped: bool,
    /// `drop_at` is a restart: the site drops out once, then comes back.
    restart: bool,
    /// The partition its data came from ([`super::shares::label`]).
    pub(crate) partition: String,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("train", &self.train.len())
            .field("test", &self.test.len())
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// Collaborator `index` of `count`: every `count`-th sample of `data` from `index`, train and
    /// test (the seed's sharding, `--partition strided`). `drop_at` names a step at which the
    /// site vanishes.
    ///
    /// # Errors
    /// A loader or libtorch error.
    pub fn new(
        name: &str,
        data: &Mnist,
        index: usize,
        count: usize,
        seed: i64,
        drop_at: Option<String>,
    ) -> anyhow::Result<Self> {
        let shard = data.shard(index, count)?;
        Site::from_share(name, &shard, "strided", seed, drop_at)
    }

    /// A collaborator holding `share` (its part of a [`super::shares::Shares`]), made by the
    /// partition named `partition` ([`super::shares::label`]; the flow checks that it is the
    /// run's). `drop_at` names a step at which the site vanishes.
    ///
    /// # Errors
    /// A libtorch error.
    ///
    /// ```
    /// use flspec_examples::secagg_mnist::Site;
    /// use flspec_tch::datasets::mnist::Mnist;
    ///
    /// let data = Mnist::load_bundled()?;
    /// let site = Site::from_share("Portland", &data.shard(1, 2)?, "strided", 42, None)?;
    /// assert_eq!(site.samples(), (2000, 500));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn from_share(
        name: &str,
        share: &Mnist,
        partition: &str,
        seed: i64,
        drop_at: Option<String>,
    ) -> anyhow::Result<Self> {
        Ok(Site {
            name: name.to_string(),
            train: Batches::new(&share.train)?,
            test: Batches::new(&share.test)?,
            net: Net::new(seed)?,
            config: TrainConfig::default(),
            client: None,
            contribution: Vec::new(),
            ring_contribution: Vec::new(),
            noise: None,
            measured: Measurements::default(),
            signing: None,
            peers: PeerKeys::default(),
            round_in_progress: None,
            revealed: None,
            drop_at,
            dropped: false,
            restart: false,
            partition: partition.to_string(),
        })
    }

    /// The same collaborator with its model and data on `device` (the same values: the model
    /// is drawn on the CPU, then copied). No copy when they are there already.
    ///
    /// # Errors
    /// A device this libtorch cannot use (see `flspec_tch::device::DeviceChoice::resolve`).
    ///
    /// ```
    /// use flspec_examples::secagg_mnist::Site;
    /// use flspec_tch::datasets::mnist::Mnist;
    ///
    /// let data = Mnist::load_bundled()?;
    /// let site = Site::from_share("Portland", &data.shard(1, 2)?, "strided", 42, None)?;
    /// let site = site.on_device(tch::Device::Cpu)?;
    /// assert_eq!(site.samples(), (2000, 500));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn on_device(mut self, device: tch::Device) -> anyhow::Result<Self> {
        if self.net.device() != device {
            let flat = self.net.to_flat()?;
            let mut net = Net::new_on(0, device)?;
            net.set_flat(&flat)?;
            self.net = net;
            self.train = self.train.to_device(device)?;
            self.test = self.test.to_device(device)?;
        }
        Ok(self)
    }

    /// Gives the collaborator its SecAgg signing key and certificate and the federation's CA,
    /// for malicious-secure secure aggregation (`--secagg-security malicious`).
    pub fn with_signing(mut self, keys: SigningKeys) -> Self {
        self.signing = Some(keys);
        self
    }

    /// The number of training and test samples it holds.
    ///
    /// ```
    /// # use flspec_examples::secagg_mnist::Site;
    /// # let data = flspec_tch::datasets::mnist::Mnist::load_bundled()?;
    /// let site = Site::new("Bengaluru", &data, 0, 4, 42, None)?;
    /// assert_eq!(site.samples(), (1000, 250));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn samples(&self) -> (usize, usize) {
        (self.train.len(), self.test.len())
    }

    /// The collaborator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Vanishes at the step named by `--drop`, and stays gone.
    pub(crate) fn check_presence(&mut self, step: &str) -> Result<(), Dropout> {
        if self.restart && self.drop_at.as_deref() == Some(step) {
            // What a restarted envoy loses: everything built during the run.
            self.drop_at = None;
            self.client = None;
            self.noise = None;
            self.peers = PeerKeys::default();
            return Err(Dropout::new(format!(
                "`--drop {}@{step}:restart`: restarted",
                self.name
            )));
        }
        if self.dropped || self.drop_at.as_deref() == Some(step) {
            self.dropped = true;
            return Err(Dropout::new(format!("`--drop {}@{step}`", self.name)));
        }
        Ok(())
    }

    /// The same site, vanishing at collaborator step `step` (for good, or once with `restart`).
    #[must_use]
    pub fn drop_at(mut self, step: &str, restart: bool) -> Self {
        self.drop_at = Some(step.to_string());
        self.restart = restart;
        self
    }
}

/// A collaborator's SecAgg signing identity: its key and certificate, issued by the
/// federation's CA (`flspec-fed certs`, or a per-run CA in the local runtime), and the CA's
/// trust anchor to verify every peer's certificate.
pub struct SigningKeys {
    credentials: SigningCredentials,
    trust: Arc<SigningTrust>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// The keys of one collaborator.
    pub fn new(credentials: SigningCredentials, trust: Arc<SigningTrust>) -> Self {
        SigningKeys { credentials, trust }
    }

    /// A fresh copy of the signing identity for one round's SecAgg client (which wipes it).
    pub(crate) fn identity(&self) -> secagg::SigningIdentity {
        self.credentials.identity.duplicate()
    }

    /// The collaborator's signing certificate (DER), which it presents to its peers.
    pub(crate) fn certificate(&self) -> &[u8] {
        &self.credentials.certificate_der
    }

    /// The signing key certified for `name` by the CA, or why `der` is not such a certificate.
    pub(crate) fn verify(&self, der: &[u8], name: &str) -> Result<[u8; 32], flspec::BoxError> {
        Ok(self.trust.verify(der, name)?)
    }
}

/// The signing identities of one local run: a CA made for the run and a signing certificate
/// for each collaborator (the PKI `flspec-fed certs` gives a federation). Each collaborator's
/// private state gets its own key; the CA's key is dropped once they are issued.
pub struct RunIdentities {
    trust: Arc<SigningTrust>,
    credentials: std::collections::BTreeMap<String, SigningCredentials>,
}

impl std::fmt::Debug for RunIdentities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunIdentities")
            .field("collaborators", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

impl RunIdentities {
    /// A fresh CA and one signing certificate per name, valid for a day.
    ///
    /// # Errors
    /// A name that cannot be a certificate's name, or a failure of the certificate library.
    pub fn new(names: &[String]) -> anyhow::Result<Self> {
        let authority = flspec_federated::certs::Authority::new("flspec local run", 1)?;
        let trust = Arc::new(SigningTrust::from_ca_pem(authority.cert_pem())?);
        let credentials = names
            .iter()
            .map(|name| Ok((name.clone(), authority.signing_credentials(name)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(RunIdentities { trust, credentials })
    }

    /// The keys of `name` (a copy of its identity: the runtime may rebuild a private state).
    ///
    /// # Errors
    /// `name` is not a collaborator of the run.
    pub fn keys_of(&self, name: &str) -> anyhow::Result<SigningKeys> {
        let c = self
            .credentials
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("no signing identity for `{name}` in this run"))?;
        Ok(SigningKeys::new(
            SigningCredentials {
                name: c.name.clone(),
                identity: c.identity.duplicate(),
                certificate_der: c.certificate_der.clone(),
            },
            Arc::clone(&self.trust),
        ))
    }
}

/// The peers' SecAgg signing certificates (name, DER) by SecAgg id, as the aggregator relayed
/// them at the run's start, each checked against the CA the first time a round needs its key.
#[derive(Debug, Default)]
pub(crate) struct PeerKeys {
    certificates: BTreeMap<secagg::ClientId, (String, Vec<u8>)>,
    /// Every key verified so far, decoded once; shared with the rounds' SecAgg clients.
    verified: Arc<secagg::VerifyingDirectory>,
}

impl PeerKeys {
    /// The relayed certificates, none verified yet.
    pub(crate) fn new(certificates: BTreeMap<secagg::ClientId, (String, Vec<u8>)>) -> Self {
        PeerKeys {
            certificates,
            verified: Arc::default(),
        }
    }

    /// Whether no certificate was relayed (a semi-honest run, or a state built afresh).
    pub(crate) fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// A directory holding at least the `needed` peers' keys: every key verified so far, plus
    /// those of `needed` not verified before, each checked with `keys`' CA for the name it was
    /// presented under. A peer without a certificate is left out: its signatures then fail as
    /// from an unknown signer. Keys the round does not need do no harm (a client looks up only
    /// its neighbourhoods').
    ///
    /// # Errors
    /// A certificate that is not the named collaborator's signing certificate from the CA.
    pub(crate) fn directory(
        &mut self,
        keys: &SigningKeys,
        needed: impl IntoIterator<Item = secagg::ClientId>,
    ) -> Result<Arc<secagg::VerifyingDirectory>, flspec::BoxError> {
        let mut grown: Option<secagg::VerifyingDirectory> = None;
        for peer in needed {
            if self.verified.public_key(peer).is_some() {
                continue;
            }
            let Some((name, der)) = self.certificates.get(&peer) else {
                continue;
            };
            let key = keys.verify(der, name).map_err(|e| {
                format!("refused the SecAgg signing certificate presented for `{name}`: {e}")
            })?;
            grown
                .get_or_insert_with(|| (*self.verified).clone())
                .insert(peer, key)?;
        }
        if let Some(grown) = grown {
            self.verified = Arc::new(grown);
        }
        Ok(Arc::clone(&self.verified))
    }

    /// How many certificates were verified so far.
    #[cfg(test)]
    pub(crate) fn verified_count(&self) -> usize {
        self.verified.len()
    }
}
