//! A session as the sessions hash stores it: compact text rather than JSON, since every
//! session costs Redis memory, and split at `|` so that the scripts can read the idle deadline
//! and the verifying device, and clear a verification, without decoding anything.
//!
//! Stored value: `IDLE|EXP|CREATED|DEVICE|KIND|AT|REM|LOGIN|USER`. `IDLE` is the idle deadline
//! (ms, Redis's clock), which only the scripts write; the client writes and reads the rest:
//! the record's times in ms, the verification (`DEVICE` the device id, `KIND` one letter, `AT`
//! ms, `REM` `1` when a remembered browser verified; all four empty when not verified), the
//! login digest (empty for none) and the user id last, so that it may hold any character.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Timestamp;
use crate::device::{DeviceId, DeviceKind, UserId};
use crate::session::{SessionRecord, VerifiedBy};
use crate::store::{LoadedSession, StoreError};

use super::reply;

/// The letter of each device kind.
fn kind_letter(kind: DeviceKind) -> char {
    match kind {
        DeviceKind::Totp => 't',
        DeviceKind::Hotp => 'h',
        DeviceKind::BackupCodes => 'b',
        DeviceKind::OutOfBand => 'o',
        DeviceKind::Push => 'p',
        DeviceKind::WebAuthn => 'w',
    }
}

fn kind_of(letter: &str) -> Result<DeviceKind, StoreError> {
    match letter {
        "t" => Ok(DeviceKind::Totp),
        "h" => Ok(DeviceKind::Hotp),
        "b" => Ok(DeviceKind::BackupCodes),
        "o" => Ok(DeviceKind::OutOfBand),
        "p" => Ok(DeviceKind::Push),
        "w" => Ok(DeviceKind::WebAuthn),
        _ => Err(corrupt()),
    }
}

fn corrupt() -> StoreError {
    reply::corrupt("session")
}

/// The record as the scripts store it after the deadline they add.
pub(super) fn encode(record: &SessionRecord) -> Result<String, StoreError> {
    let login = record.login.as_deref().unwrap_or_default();
    if login.contains('|') {
        return Err(StoreError::Invalid("a session login digest holds no '|'"));
    }
    let verified = match &record.verified {
        Some(by) => format!(
            "{}|{}|{}|{}",
            by.device_id.as_str(),
            kind_letter(by.device_kind),
            by.at.as_millis(),
            if by.remembered { "1" } else { "0" }
        ),
        None => "|||".to_owned(),
    };
    Ok(format!(
        "{}|{}|{verified}|{login}|{}",
        record.expires_at.as_millis(),
        record.created_at.as_millis(),
        record.user.as_str()
    ))
}

/// The idle deadline (ms) and the record of a stored value.
fn decode(value: &str) -> Result<(u64, SessionRecord), StoreError> {
    let mut parts = value.splitn(9, '|');
    let mut next = || parts.next().ok_or_else(corrupt);
    let deadline = millis(next()?)?;
    let expires_at = Timestamp::from_millis(millis(next()?)?);
    let created_at = Timestamp::from_millis(millis(next()?)?);
    let (device, kind, at, remembered) = (next()?, next()?, next()?, next()?);
    let login = next()?;
    let user = next()?.parse::<UserId>().map_err(|_| corrupt())?;
    let verified = match device {
        "" => None,
        device => Some(VerifiedBy {
            device_id: device.parse::<DeviceId>().map_err(|_| corrupt())?,
            device_kind: kind_of(kind)?,
            at: Timestamp::from_millis(millis(at)?),
            remembered: remembered == "1",
        }),
    };
    let record = SessionRecord {
        user,
        created_at,
        expires_at,
        verified,
        login: (!login.is_empty()).then(|| login.to_owned()),
    };
    Ok((deadline, record))
}

fn millis(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| corrupt())
}

/// The answer of the `HMGET sessions digest c` that reads a session, at `now_millis`.
pub(super) fn loaded(
    value: Option<&str>,
    configured: Option<&str>,
    now_millis: u64,
) -> Result<Option<LoadedSession>, StoreError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let (deadline, record) = decode(value)?;
    if deadline <= now_millis {
        return Ok(None);
    }
    let configured = match configured {
        Some("1") => Some(true),
        Some("0") => Some(false),
        // Written with every session; without it, the caller asks the devices.
        _ => None,
    };
    Ok(Some(LoadedSession {
        record,
        idle_left: Duration::from_millis(deadline - now_millis),
        configured,
    }))
}

/// This process's wall clock in ms, which it compares with the deadlines Redis wrote: keep
/// the instances' clocks and Redis's in step (NTP), as any skew shifts idle expiry by as much.
pub(super) fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(verified: Option<VerifiedBy>, login: Option<&str>) -> SessionRecord {
        SessionRecord {
            user: UserId::new("alice|with a bar").unwrap(),
            created_at: Timestamp::from_millis(1_700_000_000_000),
            expires_at: Timestamp::from_millis(1_700_000_043_200),
            verified,
            login: login.map(str::to_owned),
        }
    }

    #[test]
    fn records_survive_the_compact_form() {
        let by = VerifiedBy {
            device_id: DeviceId::generate(),
            device_kind: DeviceKind::BackupCodes,
            at: Timestamp::from_millis(1_700_000_000_123),
            remembered: true,
        };
        for record in [
            record(None, None),
            record(Some(by), Some("0123456789abcdef0123456789abcdef")),
        ] {
            let stored = format!("2000|{}", encode(&record).unwrap());
            assert_eq!(decode(&stored).unwrap(), (2000, record.clone()));
            let live = loaded(Some(&stored), Some("1"), 1500).unwrap().unwrap();
            assert_eq!(live.record, record);
            assert_eq!(live.idle_left, Duration::from_millis(500));
            assert_eq!(live.configured, Some(true));
            assert_eq!(loaded(Some(&stored), Some("0"), 2000).unwrap(), None);
            assert_eq!(loaded(None, Some("0"), 0).unwrap(), None);
        }
    }

    #[test]
    fn every_kind_reads_back_from_its_letter() {
        for kind in [
            DeviceKind::Totp,
            DeviceKind::Hotp,
            DeviceKind::BackupCodes,
            DeviceKind::OutOfBand,
            DeviceKind::WebAuthn,
        ] {
            let letter = kind_letter(kind).to_string();
            assert_eq!(kind_of(&letter).unwrap(), kind);
        }
    }

    #[test]
    fn damaged_values_are_corrupt() {
        for value in ["", "x|1|2||||||a", "1|2|3|nothex|t|4|0||a", "1|2|3||||"] {
            assert!(
                matches!(decode(value), Err(StoreError::Corrupt(_))),
                "{value}"
            );
        }
    }
}
