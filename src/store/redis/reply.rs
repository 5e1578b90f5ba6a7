//! Reading Redis replies and stored records. Anything unexpected is [`StoreError::Corrupt`],
//! never a panic, and no error text quotes what was stored.

use std::str::FromStr;

use redis::Value;

use crate::clock::Timestamp;
use crate::device::{Device, DeviceState};
use crate::store::StoreError;

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} in Redis"))
}

/// A string reply; `None` for nil.
pub(super) fn text(value: &Value) -> Result<Option<&str>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| corrupt("non-UTF-8 value")),
        Value::SimpleString(text) => Ok(Some(text)),
        _ => Err(corrupt("reply type")),
    }
}

/// A string reply that must be there.
pub(super) fn required_text<'a>(value: &'a Value, what: &str) -> Result<&'a str, StoreError> {
    text(value)?.ok_or_else(|| corrupt(what))
}

/// A number, sent either as an integer or as a decimal string.
pub(super) fn number<T: FromStr + TryFrom<i64>>(
    value: &Value,
    what: &str,
) -> Result<T, StoreError> {
    match value {
        Value::Int(n) => T::try_from(*n).map_err(|_| corrupt(what)),
        other => required_text(other, what)?
            .parse()
            .map_err(|_| corrupt(what)),
    }
}

/// A number that may be absent (nil).
pub(super) fn optional_number<T: FromStr + TryFrom<i64>>(
    value: &Value,
    what: &str,
) -> Result<Option<T>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        other => number(other, what).map(Some),
    }
}

/// An array reply; `None` for nil.
pub(super) fn array(value: Value) -> Result<Option<Vec<Value>>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::Array(items) | Value::Set(items) => Ok(Some(items)),
        _ => Err(corrupt("reply type")),
    }
}

/// An array reply that must be there.
pub(super) fn required_array(value: Value, what: &str) -> Result<Vec<Value>, StoreError> {
    array(value)?.ok_or_else(|| corrupt(what))
}

/// An array reply of exactly `N` items.
pub(super) fn tuple<const N: usize>(value: Value, what: &str) -> Result<[Value; N], StoreError> {
    <[Value; N]>::try_from(required_array(value, what)?).map_err(|_| corrupt(what))
}

/// The fields of a device that live in its state field, beside the record, because the
/// scripts change them on their own.
const STATE_FIELDS: [&str; 3] = ["state", "confirmed", "pending_until"];

/// A device's record without its state and confirmation, as stored beside the state field.
pub(super) fn device_record(device: &Device) -> Result<String, StoreError> {
    let mut record = serde_json::to_value(device)?;
    if let Some(fields) = record.as_object_mut() {
        for field in STATE_FIELDS {
            fields.remove(field);
        }
    }
    Ok(record.to_string())
}

/// A device as the scripts return it: `[record, seq, n, d, f, lf, lu, c, pu]` (see
/// `parse_device` in `lua/prelude.lua`), with its insertion number; `None` for nil.
pub(super) fn device(value: Value) -> Result<Option<(u64, Device)>, StoreError> {
    let Some(items) = array(value)? else {
        return Ok(None);
    };
    let [record, seq, n, d, f, lf, lu, c, pu] =
        <[Value; 9]>::try_from(items).map_err(|_| corrupt("device reply"))?;
    let mut record: serde_json::Value =
        serde_json::from_str(required_text(&record, "device record")?)?;
    let fields = record
        .as_object_mut()
        .ok_or_else(|| corrupt("device record"))?;
    let confirmed = match text(&c)? {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(corrupt("device confirmation")),
    };
    fields.insert("confirmed".to_owned(), confirmed.into());
    let pending_until: Option<u64> = optional_number(&pu, "device deadline")?;
    fields.insert("pending_until".to_owned(), pending_until.into());
    let mut device: Device = serde_json::from_value(record)?;
    device.state = DeviceState {
        next_counter: number(&n, "device counter")?,
        drift: number(&d, "device drift")?,
        failures: number(&f, "device failure count")?,
        last_failure_at: optional_number(&lf, "device failure time")?.map(Timestamp::from_millis),
        last_used_at: optional_number(&lu, "device use time")?.map(Timestamp::from_millis),
    };
    Ok(Some((number(&seq, "device order")?, device)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_replies_are_corrupt_and_quote_nothing() {
        let secret = Value::BulkString(b"secret-value".to_vec());
        let error = number::<u64>(&secret, "device counter").unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)));
        assert!(!error.to_string().contains("secret"));

        let short = Value::Array(vec![secret.clone(), Value::Nil]);
        assert!(matches!(device(short), Err(StoreError::Corrupt(_))));

        let mut fields = vec![secret.clone(); 9];
        fields[0] = Value::BulkString(b"{\"id\": \"secret-value\"".to_vec());
        let error = device(Value::Array(fields)).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)));
        assert!(!error.to_string().contains("secret"));

        assert!(matches!(
            text(&Value::BulkString(vec![0xff, 0xfe])),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            number::<u32>(&Value::Int(-1), "count"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(device(Value::Nil).unwrap(), None);
    }
}
