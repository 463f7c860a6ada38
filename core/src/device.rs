//! Backend selection at run time: `flex` (pure-Rust CPU, always built), `tch` (libtorch CPU)
//! and `tch-cuda:N` (libtorch CUDA), the latter two with the `tch` cargo feature.

use burn::tensor::{Device, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}; use flex, tch or tch-cuda:N")]
    Unknown(String),
    #[error(
        "device {0:?} needs the libtorch backend; rebuild with `cargo build --release --features tch` (see README)"
    )]
    NotBuilt(String),
    #[error("device {0:?} is not usable here: {1}")]
    Unusable(String, String),
}

/// Parses a device name and checks that a tensor can be created on it.
pub fn parse(name: &str) -> Result<Device, DeviceError> {
    let device = match name {
        "flex" => Device::flex(),
        "tch" => libtorch(None, name)?,
        other => match other.strip_prefix("tch-cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => libtorch(Some(i), name)?,
            _ => return Err(DeviceError::Unknown(name.into())),
        },
    };
    // Backends panic on an unusable device (no GPU, missing driver): probe with a tiny tensor.
    let probe = device.clone();
    let ok = std::panic::catch_unwind(move || Tensor::<1>::zeros([1], &probe).into_data().try_to_vec::<f32>().is_ok());
    match ok {
        Ok(true) => Ok(device),
        Ok(false) => Err(DeviceError::Unusable(name.into(), "could not read back a tensor".into())),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "backend panicked".into());
            Err(DeviceError::Unusable(name.into(), msg))
        }
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn marks burn-tch deprecated; it is the GPU backend that builds offline
fn libtorch(cuda: Option<usize>, _name: &str) -> Result<Device, DeviceError> {
    Ok(match cuda {
        None => Device::libtorch(),
        Some(i) => Device::libtorch_cuda(i),
    })
}

#[cfg(not(feature = "tch"))]
fn libtorch(_cuda: Option<usize>, name: &str) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt(name.into()))
}
