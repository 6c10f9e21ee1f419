//! Sanity check of the MNIST loader and the SecAgg example's CNN, without any federation: each of
//! two collaborators trains a fresh `Net::new(42)` on its shard for one epoch and validates it on
//! its test shard.
//!
//! ```text
//! cargo run --release --example mnist_sanity -- [--data DIR] [--threads N] [--epochs N]
//! ```
//! `--data` reads a full MNIST folder (torchvision's `MNIST/raw` layout) instead of the bundled
//! 5,000-sample subset.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use flspec_tch::datasets::mnist::{self, Mnist};
use flspec_tch::models::mnist_cnn::{NUM_PARAMETERS, Net};
use flspec_tch::threads;
use flspec_tch::train::{self, TrainConfig};

fn main() -> Result<()> {
    let mut data_dir: Option<PathBuf> = None;
    let mut threads = 1;
    let mut epochs = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--data" => data_dir = Some(value()?.into()),
            "--threads" => threads = value()?.parse().context("--threads")?,
            "--epochs" => epochs = value()?.parse().context("--epochs")?,
            other => {
                bail!("unknown argument `{other}`; expected --data DIR, --threads N, --epochs N")
            }
        }
    }
    threads::set_num_threads(threads);

    let t = Instant::now();
    let data = match &data_dir {
        Some(dir) => Mnist::load(dir)?,
        None => Mnist::load_bundled()?,
    };
    println!(
        "data: {} ({} train, {} test), verified and loaded in {:.0} ms; {threads} thread(s)",
        data_dir.unwrap_or_else(mnist::bundled_dir).display(),
        data.train.len(),
        data.test.len(),
        t.elapsed().as_secs_f64() * 1e3,
    );

    let config = TrainConfig::default();
    let names = ["Bengaluru", "Portland"];
    for (i, name) in names.iter().enumerate() {
        let shard = data.shard(i, names.len())?;
        let mut net = Net::new(42)?;
        assert_eq!(net.to_flat()?.len(), NUM_PARAMETERS);
        let initial = train::validate(&net, &shard.test, config.batch_size)?;
        println!(
            "{name}: shard {i} of {}: {} train, {} test; untrained accuracy {initial:.4}",
            names.len(),
            shard.train.len(),
            shard.test.len()
        );
        for epoch in 1..=epochs {
            let t = Instant::now();
            let loss = train::train_one_epoch(&mut net, &shard.train, &config)?;
            let train_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let accuracy = train::validate(&net, &shard.test, config.batch_size)?;
            let validate_s = t.elapsed().as_secs_f64();
            println!(
                "{name}: epoch {epoch}: train loss {loss:.4} ({train_s:.2} s), \
                 test accuracy {accuracy:.4} ({validate_s:.2} s)"
            );
        }
    }
    Ok(())
}
