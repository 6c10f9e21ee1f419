//! `flspec_tch::export`: safetensors files of the seed's `Net`, round trips, refused files, and
//! the same file read by Python's `safetensors` (`scripts/check_safetensors.py`).
#![cfg(feature = "torch")]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use flspec_tch::Error;
use flspec_tch::export;
use flspec_tch::models::mnist_cnn::{NUM_PARAMETERS, Net, PARAMETERS};
use flspec_tch::params::Layout;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// A trained-looking model: the seed's initialisation, with a few special values.
fn model() -> (Net, Vec<f32>) {
    let mut net = Net::new(42).unwrap();
    let mut flat = net.to_flat().unwrap();
    flat[0] = -0.0;
    flat[1] = f32::MIN_POSITIVE / 2.0; // subnormal
    flat[NUM_PARAMETERS - 1] = f32::MAX;
    net.set_flat(&flat).unwrap();
    (net, flat)
}

#[test]
fn net_round_trips_bit_exactly_under_the_state_dict_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let (net, flat) = model();
    export::save_net(&net, &path).unwrap();

    let mut other = Net::new(7).unwrap();
    export::load_net(&mut other, &path).unwrap();
    assert_eq!(bits(&other.to_flat().unwrap()), bits(&flat));

    // The file itself: the seed's `Net().state_dict()` keys, F32, PyTorch's shapes, the
    // values little-endian, and the metadata Hugging Face tools look for.
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = file.names().into_iter().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let mut offset = 0;
    for p in &PARAMETERS {
        let view = file.tensor(p.name).unwrap();
        assert_eq!(view.dtype(), Dtype::F32, "{}", p.name);
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        assert_eq!(shape, p.shape, "{}", p.name);
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(bits(&values), bits(&flat[offset..offset + p.numel()]));
        offset += p.numel();
    }
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = metadata.metadata().clone().unwrap();
    assert_eq!(metadata.get("format").map(String::as_str), Some("pt"));

    // The flat form reads the same file, and no temporary file is left behind.
    assert_eq!(
        bits(&export::load_flat(Net::layout(), &path).unwrap()),
        bits(&flat)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn var_store_round_trip_with_a_sorted_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vs.safetensors");
    let (net, _) = model();
    let layout = Layout::from_var_store(net.var_store()).unwrap();
    export::save_var_store(&layout, net.var_store(), &path).unwrap();
    let other = Net::new(1).unwrap();
    export::load_var_store(&layout, other.var_store(), &path).unwrap();
    assert_eq!(
        bits(&other.to_flat().unwrap()),
        bits(&net.to_flat().unwrap())
    );
    // Files are by name: a sorted-layout file loads into a Net (state_dict order) too.
    let mut third = Net::new(2).unwrap();
    export::load_net(&mut third, &path).unwrap();
    assert_eq!(
        bits(&third.to_flat().unwrap()),
        bits(&net.to_flat().unwrap())
    );
}

/// A file of `net`'s values under `specs` (a layout that differs from the Net's).
fn file_with(dir: &Path, file: &str, specs: &[(&str, Vec<i64>)]) -> PathBuf {
    let layout = Layout::new(specs.iter().cloned()).unwrap();
    let values: Vec<f32> = (0..layout.len()).map(|i| i as f32).collect();
    let path = dir.join(file);
    export::save_flat(&layout, &values, &path).unwrap();
    path
}

fn net_specs() -> Vec<(&'static str, Vec<i64>)> {
    PARAMETERS
        .iter()
        .map(|p| (p.name, p.shape.to_vec()))
        .collect()
}

#[test]
fn files_with_missing_extra_or_reshaped_tensors_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut net, flat) = model();

    let mut specs = net_specs();
    specs.retain(|(name, _)| *name != "fc2.bias");
    let missing = file_with(dir.path(), "missing.safetensors", &specs);
    let err = export::load_net(&mut net, &missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "parameter `fc2.bias` (shape [10]) is missing from file `{}`; it must hold the same \
             tensors as the layout (the model's parameters)",
            missing.display()
        )
    );

    let mut specs = net_specs();
    specs.push(("fc3.weight", vec![2, 50]));
    let extra = file_with(dir.path(), "extra.safetensors", &specs);
    let err = export::load_net(&mut net, &extra).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "file `{}` has a parameter `fc3.weight` (shape [2, 50]) that the layout does not; it \
             must hold the same tensors as the layout (the model's parameters)",
            extra.display()
        )
    );

    let mut specs = net_specs();
    specs[1].1 = vec![5, 2]; // conv1.bias
    let reshaped = file_with(dir.path(), "reshaped.safetensors", &specs);
    let err = export::load_net(&mut net, &reshaped).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { name, expected, found, .. }
            if name == "conv1.bias" && expected == &[10] && found == &[5, 2]),
        "{err}"
    );

    // A file of doubles (as `safetensors.torch.save_file(net.double().state_dict())` writes).
    let doubles = dir.path().join("f64.safetensors");
    let named: Vec<(&str, Tensor)> = PARAMETERS
        .iter()
        .map(|p| (p.name, Tensor::zeros(p.shape, (Kind::Double, Device::Cpu))))
        .collect();
    Tensor::write_safetensors(&named, &doubles).unwrap();
    let err = export::load_net(&mut net, &doubles).unwrap_err();
    assert!(
        matches!(&err, Error::ParameterKind { kind, .. } if kind == "F64"),
        "{err}"
    );

    // Not safetensors at all.
    let garbage = dir.path().join("model.pt");
    std::fs::write(&garbage, b"PK\x03\x04 a torch.save zip").unwrap();
    let err = export::load_net(&mut net, &garbage).unwrap_err();
    assert!(matches!(err, Error::ExportRead { .. }), "{err}");
    assert!(err.to_string().contains("not `torch.save`"), "{err}");
    let err = export::load_net(&mut net, dir.path().join("absent.safetensors")).unwrap_err();
    assert!(matches!(err, Error::ExportRead { .. }), "{err}");

    // None of the refused files changed the model.
    assert_eq!(bits(&net.to_flat().unwrap()), bits(&flat));
}

#[test]
fn saving_refuses_a_wrong_length_and_reports_an_unwritable_path() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        export::save_flat(Net::layout(), &[0.0; 3], dir.path().join("x.safetensors")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ParameterCount {
                expected: NUM_PARAMETERS,
                found: 3
            }
        ),
        "{err}"
    );
    let (net, _) = model();
    let path = dir.path().join("no such folder").join("model.safetensors");
    let err = export::save_net(&net, &path).unwrap_err();
    assert!(matches!(err, Error::ExportWrite { .. }), "{err}");
    assert!(
        err.to_string().contains("check that its folder exists"),
        "{err}"
    );
}

/// What `scripts/check_safetensors.py` prints for a tensor, computed here.
fn expected_lines(flat: &[f32]) -> Vec<String> {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut offset = 0;
    for p in &PARAMETERS {
        let bytes: Vec<u8> = flat[offset..offset + p.numel()]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        offset += p.numel();
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shape: Vec<String> = p.shape.iter().map(i64::to_string).collect();
        lines.push((
            p.name.to_owned(),
            format!("tensor {} float32 {} {digest}", p.name, shape.join(",")),
        ));
    }
    lines.sort();
    lines.into_iter().map(|(_, line)| line).collect()
}

/// `Net::new(42)` draws exactly what PyTorch's `torch.manual_seed(42); Net()` draws: the lines
/// below are `scripts/check_safetensors.py`'s output for a file PyTorch 2.13.0 (CPU) wrote with
/// `safetensors.torch.save_file(Net().state_dict(), ...)` after `torch.manual_seed(42)` (`Net` as
/// in the script's `seed_net`), made once on 2026-11-30; that file loaded here bit for bit.
#[test]
fn net_new_42_is_pytorchs_seed_42_net() {
    const PYTORCH: [&str; 8] = [
        "tensor conv1.bias float32 10 12d985109f2babd8d6439aa4668880629e87295a3d5fcb060a76271bd01db6d5",
        "tensor conv1.weight float32 10,1,5,5 be1c59c40920eaee1941b9a9417c44c3fc6839f0dfe5880a51a36331d86a22b6",
        "tensor conv2.bias float32 20 05b1d130e53378bfe46a2b06b48edfa6d1282253e84763e11809e7ed6a77ea9f",
        "tensor conv2.weight float32 20,10,5,5 2261cb1b93ba22b0de5903ece1e0b3af2bb18a0f7f68c6ea8f29cc4062e43482",
        "tensor fc1.bias float32 50 96d0d1ee07d0876783985efba506ecb426cadca65e324c48f65076946f2277fd",
        "tensor fc1.weight float32 50,320 a8e8e31464ebfc55a2f782ea2ba0573502822e464b73b87ffd22138d86947b9f",
        "tensor fc2.bias float32 10 1a44cee56f4a7c66bf0f6ba4522bf2cc42ca28803c2319c74df450edbdc17ebb",
        "tensor fc2.weight float32 10,50 3c7246a02b09612f64ac27e17fbf50f482f36800ffa8770fdd18962a782d9b77",
    ];
    let flat = Net::new(42).unwrap().to_flat().unwrap();
    assert_eq!(expected_lines(&flat), PYTORCH);
}

/// The first Python that imports `safetensors`: `$FLSPEC_CHECK_PYTHON`, the project's
/// `.venv-check` (scripts/setup-python-check.sh), `python3`. `Err` says why none did.
fn python_with_safetensors() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("FLSPEC_CHECK_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push(root.join(".venv-check/bin/python"));
    candidates.push("python3".into());
    let mut tried = Vec::new();
    for python in candidates {
        match Command::new(&python)
            .args(["-c", "import safetensors"])
            .output()
        {
            Ok(out) if out.status.success() => return Ok(python),
            Ok(out) => {
                let err = String::from_utf8_lossy(&out.stderr);
                let last = err.lines().last().unwrap_or("").trim().to_owned();
                tried.push(format!("{}: {last}", python.display()));
            }
            Err(e) => tried.push(format!("{}: {e}", python.display())),
        }
    }
    Err(tried.join("; "))
}

/// PyTorch's side: Python's `safetensors` loads our file (as torch tensors when torch is
/// installed, else numpy arrays) with the same names, shapes, dtype and values (SHA-256 of the
/// little-endian bytes); with torch, the seed's `Net` takes it with `load_state_dict(strict=True)`.
/// A file Python writes back loads here bit for bit.
#[test]
fn python_safetensors_reads_the_file_and_writes_one_we_read() {
    let python = match python_with_safetensors() {
        Ok(python) => python,
        Err(why) => {
            eprintln!(
                "skipped: no Python here can import `safetensors` ({why}); \
                 run scripts/setup-python-check.sh to make .venv-check/"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let resaved = dir.path().join("resaved.safetensors");
    let (net, flat) = model();
    export::save_net(&net, &path).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_safetensors.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .arg("--seed-net")
        .arg("--resave")
        .arg(&resaved)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{stderr}",
        python.display()
    );
    let tensors: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("tensor "))
        .map(str::to_owned)
        .collect();
    assert_eq!(tensors, expected_lines(&flat), "{stdout}");
    assert!(stdout.contains("metadata {\"format\": \"pt\"}"), "{stdout}");
    let seed_net = stdout
        .lines()
        .find(|l| l.starts_with("seed-net"))
        .unwrap_or("seed-net: no line");
    assert!(
        seed_net == "seed-net load_state_dict ok" || seed_net.starts_with("seed-net skipped"),
        "{stdout}"
    );
    eprintln!("checked with {}: {seed_net}", python.display());

    let mut other = Net::new(7).unwrap();
    export::load_net(&mut other, &resaved).unwrap();
    assert_eq!(bits(&other.to_flat().unwrap()), bits(&flat));
}
