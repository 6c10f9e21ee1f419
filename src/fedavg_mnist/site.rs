//! A collaborator's private state: its training data (its partition of the training set), its
//! test shard, its model, and, for a Byzantine collaborator, its attack. Never serialized, never
//! sent.

use flspec_tch::datasets::mnist::{CLASSES, Dataset};
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::Batches;
use tch::Device;

use super::attack::Attack;

/// The private state of one collaborator.
pub struct Site {
    name: String,
    pub(crate) train: Batches,
    pub(crate) test: Batches,
    pub(crate) net: Net,
    pub(crate) attack: Option<Attack>,
    /// Seeds the noise attack's generator (with the round).
    pub(crate) noise_seed: u64,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("train", &self.train.len())
            .field("test", &self.test.len())
            .finish_non_exhaustive()
    }
}

impl Site {
    /// A collaborator that trains on `train` and validates on `test`, on `device` (its model and
    /// data live there). An [`Attack::LabelFlip`] attacker trains on the labels `9 − y`.
    /// `noise_seed` seeds an [`Attack::Noise`].
    ///
    /// # Errors
    /// An empty training set, or a libtorch error (e.g. a device it lacks).
    pub fn new(
        name: &str,
        train: &Dataset,
        test: &Dataset,
        attack: Option<Attack>,
        noise_seed: u64,
        device: Device,
    ) -> anyhow::Result<Self> {
        if train.is_empty() {
            anyhow::bail!(
                "collaborator `{name}` has no training samples; use fewer collaborators, more data, or another partition"
            );
        }
        let train = if attack == Some(Attack::LabelFlip) {
            let flipped = train
                .labels()
                .iter()
                .map(|&y| (CLASSES as u8 - 1) - y)
                .collect();
            Batches::new(&Dataset::new(train.pixels().to_vec(), flipped))?
        } else {
            Batches::new(train)?
        };
        let train = if device == Device::Cpu {
            train
        } else {
            train.to_device(device)?
        };
        Ok(Site {
            name: name.to_string(),
            train,
            test: Batches::new(test)?.to_device(device)?,
            // Overwritten by the global model at the start of every round.
            net: Net::new_on(0, device)?,
            attack,
            noise_seed,
        })
    }

    /// The collaborator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Training samples.
    pub fn train_len(&self) -> usize {
        self.train.len()
    }
}
