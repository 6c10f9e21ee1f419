//! Which device a model trains on, as a command line names it: `auto`, `cpu`, `cuda` or
//! `cuda:N` ([`DeviceChoice`], which clap parses through [`FromStr`]), resolved against what
//! libtorch offers by `DeviceChoice::resolve` (with the `torch` feature; parsing needs none).
//!
//! ```
//! use flspec_tch::device::DeviceChoice;
//!
//! let choice: DeviceChoice = "cuda:1".parse()?;
//! assert_eq!(choice, DeviceChoice::Cuda(Some(1)));
//! assert_eq!(choice.to_string(), "cuda:1");
//! assert_eq!(DeviceChoice::default(), DeviceChoice::Auto);
//! assert!("gpu".parse::<DeviceChoice>().is_err());
//! # Ok::<(), flspec_tch::device::ParseDeviceError>(())
//! ```
//!
//! With clap: `#[arg(long, default_value_t = DeviceChoice::Auto)] device: DeviceChoice`.
//!
//! CUDA needs a libtorch built with it: the one `scripts/setup-libtorch.sh` installs is CPU-only,
//! so there `cuda` is refused with an error that says so and what to do. A model is built on a
//! device with `models::mnist_cnn::Net::new_on`; training and validation (`train`) move each
//! batch to the model's device.

use std::fmt;
use std::str::FromStr;

/// A device as asked for on a command line: `auto`, `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// The first CUDA device if libtorch sees one, else the CPU (`auto`).
    #[default]
    Auto,
    /// The CPU (`cpu`).
    Cpu,
    /// A CUDA device: `cuda` (`None`, the first one) or `cuda:N` (`Some(N)`).
    Cuda(Option<usize>),
}

/// The error of parsing a [`DeviceChoice`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown device `{0}`; expected one of: auto, cpu, cuda, cuda:N (N a CUDA device index: 0, 1, ...)"
)]
pub struct ParseDeviceError(String);

impl FromStr for DeviceChoice {
    type Err = ParseDeviceError;

    /// Parses `auto`, `cpu`, `cuda` or `cuda:N` (ASCII case ignored, surrounding spaces allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(None)),
            other => other
                .strip_prefix("cuda:")
                // Digits only: `usize::from_str` would also take `+1`.
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(|n| Self::Cuda(Some(n)))
                .ok_or_else(|| ParseDeviceError(s.to_owned())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    /// The form [`FromStr`] reads: `auto`, `cpu`, `cuda`, `cuda:N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(None) => f.write_str("cuda"),
            Self::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(feature = "torch")]
mod resolve {
    use tch::{Cuda, Device};

    use super::DeviceChoice;
    use crate::error::{Error, Result};

    impl DeviceChoice {
        /// The libtorch device: `auto` is `cuda:0` if [`tch::Cuda::is_available`], else the
        /// CPU; `cuda` is `cuda:0`.
        ///
        /// ```
        /// use flspec_tch::device::DeviceChoice;
        /// use flspec_tch::models::mnist_cnn::Net;
        ///
        /// let device = "auto".parse::<DeviceChoice>()?.resolve()?;
        /// let net = Net::new_on(42, device)?;
        /// assert_eq!(net.device(), device);
        /// assert_eq!(DeviceChoice::Cpu.resolve()?, tch::Device::Cpu);
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        ///
        /// # Errors
        /// [`Error::CudaUnavailable`] for `cuda` or `cuda:N` when libtorch sees no CUDA device
        /// (a CPU-only libtorch, as `scripts/setup-libtorch.sh` installs, or no GPU or driver);
        /// [`Error::CudaIndex`] for `cuda:N` with N at least the number of devices.
        pub fn resolve(self) -> Result<Device> {
            let index = match self {
                Self::Cpu => return Ok(Device::Cpu),
                Self::Auto => return Ok(Device::cuda_if_available()),
                Self::Cuda(index) => index.unwrap_or(0),
            };
            if !Cuda::is_available() {
                return Err(Error::CudaUnavailable {
                    requested: self,
                    built_with_cuda: tch::utils::has_cuda(),
                });
            }
            let count = usize::try_from(Cuda::device_count()).unwrap_or(0);
            if index >= count {
                return Err(Error::CudaIndex {
                    requested: self,
                    count,
                });
            }
            Ok(Device::Cuda(index))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for (text, choice) in [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("cuda", DeviceChoice::Cuda(None)),
            ("cuda:0", DeviceChoice::Cuda(Some(0))),
            ("cuda:12", DeviceChoice::Cuda(Some(12))),
        ] {
            assert_eq!(text.parse::<DeviceChoice>().unwrap(), choice, "{text}");
            assert_eq!(choice.to_string(), text);
        }
        assert_eq!(" CUDA:1 ".parse(), Ok(DeviceChoice::Cuda(Some(1))));
        assert_eq!("Cpu".parse(), Ok(DeviceChoice::Cpu));
    }

    #[test]
    fn unknown_devices_are_refused_listing_the_options() {
        for bad in [
            "", "gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda0", "mps",
        ] {
            let err = bad.parse::<DeviceChoice>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "unknown device `{bad}`; expected one of: auto, cpu, cuda, cuda:N \
                     (N a CUDA device index: 0, 1, ...)"
                )
            );
        }
    }

    #[cfg(feature = "torch")]
    #[test]
    fn cpu_resolves_and_auto_follows_libtorch() {
        assert_eq!(DeviceChoice::Cpu.resolve().unwrap(), tch::Device::Cpu);
        let expected = if tch::Cuda::is_available() {
            tch::Device::Cuda(0)
        } else {
            tch::Device::Cpu
        };
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), expected);
    }

    /// This checkout's libtorch (`scripts/setup-libtorch.sh`) is CPU-only: CUDA is refused, saying
    /// why and what to do.
    #[cfg(feature = "torch")]
    #[test]
    fn cuda_without_cuda_is_refused_saying_what_to_do() {
        if tch::Cuda::is_available() {
            eprintln!("skipped: libtorch sees a CUDA device here");
            return;
        }
        for choice in [DeviceChoice::Cuda(None), DeviceChoice::Cuda(Some(1))] {
            let err = choice.resolve().unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, crate::Error::CudaUnavailable { requested, .. } if requested == choice),
                "{text}"
            );
            assert!(
                text.starts_with(&format!("device `{choice}` asked for, but")),
                "{text}"
            );
            assert!(text.contains("--device cpu"), "{text}");
            if !tch::utils::has_cuda() {
                assert!(
                    text.contains("this libtorch was built without CUDA"),
                    "{text}"
                );
            }
        }
    }
}
