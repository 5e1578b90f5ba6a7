//! What the templates get to show: devices, browsers and times, nothing secret.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::device::{Device, DeviceKind};
use crate::remember::RememberedBrowser;

/// A device as pages show it: the destination masked, no secret, no state.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DeviceItem {
    pub(crate) id: String,
    /// `totp`, `hotp`, `backup_codes`, `out_of_band`.
    pub(crate) kind: &'static str,
    /// The method key: the kind, or the out-of-band channel (`sms`, `call`, `email`).
    pub(crate) method: String,
    pub(crate) name: String,
    pub(crate) default: bool,
    pub(crate) backup: bool,
    pub(crate) destination: Option<String>,
    pub(crate) created_at: String,
    pub(crate) last_used_at: Option<String>,
}

impl From<&Device> for DeviceItem {
    fn from(device: &Device) -> Self {
        DeviceItem {
            id: device.id.to_string(),
            kind: device.kind().as_str(),
            method: device.method_key().to_owned(),
            name: device.name.clone(),
            default: device.is_default,
            backup: device.kind() == DeviceKind::BackupCodes,
            destination: device.masked_destination(),
            created_at: utc(device.created_at),
            last_used_at: device.state.last_used_at.map(utc),
        }
    }
}

/// A remembered browser as the profile shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct BrowserItem {
    id: String,
    user_agent: Option<String>,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: String,
}

impl From<&RememberedBrowser> for BrowserItem {
    fn from(browser: &RememberedBrowser) -> Self {
        BrowserItem {
            id: browser.id.as_str().to_owned(),
            user_agent: browser.user_agent.clone(),
            created_at: utc(browser.created_at),
            last_used_at: browser.last_used_at.map(utc),
            expires_at: utc(browser.expires_at),
        }
    }
}

/// The user's confirmed devices, the default first among equals as the store keeps them.
pub(crate) fn confirmed(devices: &[Device]) -> Vec<DeviceItem> {
    devices
        .iter()
        .filter(|device| device.confirmed)
        .map(DeviceItem::from)
        .collect()
}

/// `at` as `2026-12-01 23:05 UTC`.
pub(crate) fn utc(at: Timestamp) -> String {
    let secs = at.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let minutes = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(utc(Timestamp::from_secs(0)), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc(Timestamp::from_secs(951_782_400)),
            "2000-02-29 00:00 UTC"
        );
        assert_eq!(
            utc(Timestamp::from_secs(1_796_166_300)),
            "2026-12-01 23:05 UTC"
        );
    }
}
