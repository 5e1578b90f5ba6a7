//! What the API shows: devices, provisioning, status. Times are milliseconds since the Unix
//! epoch.

use serde::Serialize;

use crate::device::Device;

/// A device as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DeviceView {
    id: String,
    /// `totp`, `hotp`, `backup_codes`, or an out-of-band channel (`email`, `sms`, …).
    method: String,
    kind: &'static str,
    name: String,
    confirmed: bool,
    default: bool,
    created_at: u64,
    last_used_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
}

impl From<&Device> for DeviceView {
    fn from(device: &Device) -> Self {
        DeviceView {
            id: device.id.to_string(),
            method: device.method_key().to_owned(),
            kind: device.kind().as_str(),
            name: device.name.clone(),
            confirmed: device.confirmed,
            default: device.is_default,
            created_at: device.created_at.as_millis(),
            last_used_at: device.state.last_used_at.map(|t| t.as_millis()),
            destination: device.masked_destination(),
        }
    }
}

/// A confirmed device as a login page shows it to choose how to verify: nothing secret,
/// nothing about its use, the destination masked.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DeviceChoice {
    id: String,
    kind: &'static str,
    name: String,
    default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<String>,
}

impl From<&Device> for DeviceChoice {
    fn from(device: &Device) -> Self {
        DeviceChoice {
            id: device.id.to_string(),
            kind: device.kind().as_str(),
            name: device.name.clone(),
            default: device.is_default,
            destination: device.masked_destination(),
        }
    }
}
