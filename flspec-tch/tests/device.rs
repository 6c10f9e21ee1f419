//! `flspec_tch::device` with models and training: a model built on a resolved device, batches
//! moved to the model's device. (CUDA itself cannot run here: the project's libtorch is
//! CPU-only; `device::tests` checks that CUDA is refused, saying why.)
#![cfg(feature = "torch")]
#![allow(clippy::unwrap_used)]

use flspec_tch::datasets::mnist::{COLS, Dataset, ROWS};
use flspec_tch::device::DeviceChoice;
use flspec_tch::models::mnist_cnn::Net;
use flspec_tch::train::{self, Batches, TrainConfig};

/// 40 synthetic 28x28 images, labels 0..9.
fn data() -> Dataset {
    let pixels = (0..40 * ROWS * COLS)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    let labels = (0..40).map(|i| (i % 10) as u8).collect();
    Dataset::new(pixels, labels)
}

#[test]
fn a_model_on_the_resolved_device_trains_as_on_the_cpu() {
    let device = "auto".parse::<DeviceChoice>().unwrap().resolve().unwrap();
    let data = data();
    let config = TrainConfig {
        batch_size: 16,
        ..TrainConfig::default()
    };

    let mut on_cpu = Net::new(5).unwrap();
    let loss_cpu = train::train_one_epoch(&mut on_cpu, &data, &config).unwrap();

    let mut on_device = Net::new_on(5, device).unwrap();
    assert_eq!(on_device.device(), device);
    // Same draws on every device.
    assert_eq!(
        on_device.to_flat().unwrap(),
        Net::new(5).unwrap().to_flat().unwrap()
    );
    // Batches converted on the CPU are moved to the model's device by training...
    let batches = Batches::new(&data).unwrap();
    let loss = train::train_one_epoch_on(&mut on_device, &batches, &config).unwrap();
    // ...or moved once beforehand.
    let moved = batches.to_device(device).unwrap();
    let accuracy = train::validate_on(&on_device, &moved, 8).unwrap();

    if device == tch::Device::Cpu {
        assert_eq!(loss, loss_cpu);
        assert_eq!(on_device.to_flat().unwrap(), on_cpu.to_flat().unwrap());
        assert_eq!(
            accuracy,
            train::validate(&on_cpu, &data, 8).unwrap(),
            "validation on moved batches"
        );
    } else {
        // GPU kernels round differently: close, not bit-identical.
        assert!((loss - loss_cpu).abs() < 1e-3, "{loss} vs {loss_cpu}");
    }
}
