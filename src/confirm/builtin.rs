//! The built-in methods, over the crate's devices.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::device::{DeviceId, DeviceKind, Error, TwoFactor, Verification, out_of_band};

use super::{ConfirmError, ConfirmationBackend, Context, Method, Requested};

/// Confirms a new out-of-band destination (an email address, a phone number) before it is
/// enabled: requesting adds it as an unconfirmed device of the user and sends it a code;
/// confirming with that code confirms the device.
///
/// * User configuration and request state: `{"destination": "...", "name": "..."}` (`name`
///   optional). Changing the configuration needs confirming unless the destination stays
///   the same.
/// * State once requested: `{"device_id", "channel", "masked_destination"}`. Another code
///   can be sent with [`TwoFactor::send_challenge`] on that device, after its cooldown and
///   within the send limits.
/// * Answer: `{"code": "123456"}`, from the login that requested the confirmation (the code
///   is bound to it).
#[derive(Clone, Debug)]
pub struct OutOfBandMethod {
    two_factor: TwoFactor,
    channel: String,
}

impl OutOfBandMethod {
    /// The method for `channel` (which needs a sender registered on `two_factor`).
    pub fn new(two_factor: TwoFactor, channel: impl Into<String>) -> Self {
        OutOfBandMethod {
            two_factor,
            channel: channel.into(),
        }
    }

    /// The method, registered under the channel's name and with a user configuration schema.
    pub fn into_method(self) -> Method {
        let (key, name) = (self.channel.clone(), default_name(&self.channel).to_owned());
        Method::new(key, name, self).with_user_config_schema(json!({
            "type": "object",
            "required": ["destination"],
            "properties": {
                "destination": {"type": "string", "minLength": 1, "maxLength": 256},
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
            },
        }))
    }

    fn normalise(&self, config: &Value) -> Result<String, ConfirmError> {
        let destination =
            text(config, "destination").ok_or(ConfirmError::InvalidData("no destination"))?;
        Ok(out_of_band::normalise_destination(
            &self.channel,
            destination,
        )?)
    }
}

fn default_name(channel: &str) -> &str {
    match channel {
        out_of_band::EMAIL => "Email",
        out_of_band::SMS => "Text message",
        other => other,
    }
}

#[async_trait]
impl ConfirmationBackend for OutOfBandMethod {
    async fn change_user_config(
        &self,
        _cx: Context<'_>,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<Option<Value>, ConfirmError> {
        let destination = self.normalise(new)?;
        let unchanged = old.is_some_and(|old| self.normalise(old).is_ok_and(|d| d == destination));
        if unchanged {
            return Ok(None);
        }
        let name = text(new, "name").unwrap_or(default_name(&self.channel));
        Ok(Some(json!({"destination": destination, "name": name})))
    }

    async fn request_confirmation(
        &self,
        cx: Context<'_>,
        state: Value,
    ) -> Result<Requested, ConfirmError> {
        let destination =
            text(&state, "destination").ok_or(ConfirmError::InvalidData("no destination"))?;
        let name = text(&state, "name").unwrap_or(default_name(&self.channel));
        let device = self
            .two_factor
            .add_out_of_band_device(cx.caller, name, &self.channel, destination)
            .await?;
        match self.two_factor.send_challenge(cx.caller, &device.id).await {
            Ok(sent) => Ok(Requested::InProcess(json!({
                "device_id": device.id,
                "channel": sent.channel,
                "masked_destination": sent.masked_destination,
            }))),
            Err(error @ Error::Delivery(_)) => {
                // Nothing reached the destination: leave no pending device behind.
                self.two_factor.delete_device(cx.caller, &device.id).await?;
                Err(error.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn confirm(
        &self,
        cx: Context<'_>,
        state: &Value,
        data: &Value,
    ) -> Result<bool, ConfirmError> {
        let device = device_id(state)?.ok_or(ConfirmError::InvalidData("no device"))?;
        let code = text(data, "code").ok_or(ConfirmError::InvalidData("no code"))?;
        let confirmed = self
            .two_factor
            .confirm_device(cx.caller, &device, code)
            .await;
        answer(confirmed.map(|c| c.verification))
    }
}

/// Confirms a sensitive action with any of the user's confirmed devices (backup codes
/// included), or with one named device.
///
/// * Request state: any JSON object, kept as it is, describing the action (say
///   `{"action": "delete_account"}`); check it when using the confirmation. With a
///   `"device_id"` of an out-of-band device, a code is sent to it, bound to the requesting
///   login, and the state gains its `"masked_destination"`; only that device's codes then
///   confirm.
/// * Answer: `{"code": "123456"}`, optionally with a `"device_id"` to check only that device.
/// * The user must have a confirmed device.
#[derive(Clone, Debug)]
pub struct DeviceMethod {
    two_factor: TwoFactor,
}

impl DeviceMethod {
    /// The key the method registers under.
    pub const KEY: &'static str = "device";

    /// The method over `two_factor`'s devices.
    pub fn new(two_factor: TwoFactor) -> Self {
        DeviceMethod { two_factor }
    }

    /// The method, registered as [`DeviceMethod::KEY`].
    pub fn into_method(self) -> Method {
        Method::new(Self::KEY, "Verify with a device", self)
    }
}

#[async_trait]
impl ConfirmationBackend for DeviceMethod {
    async fn change_user_config(
        &self,
        _cx: Context<'_>,
        _old: Option<&Value>,
        _new: &Value,
    ) -> Result<Option<Value>, ConfirmError> {
        // The method has no configuration of its own: the user's devices are its
        // configuration, and they are confirmed when added.
        Ok(None)
    }

    async fn request_confirmation(
        &self,
        cx: Context<'_>,
        state: Value,
    ) -> Result<Requested, ConfirmError> {
        let mut state = match state {
            Value::Null => json!({}),
            Value::Object(_) => state,
            _ => return Err(ConfirmError::InvalidData("the state must be a JSON object")),
        };
        if !self.two_factor.is_configured(cx.user).await? {
            return Err(Error::NotConfigured.into());
        }
        if let Some(id) = device_id(&state)? {
            let device = self
                .two_factor
                .device(cx.user, &id)
                .await?
                .ok_or(Error::DeviceNotFound)?;
            if !device.confirmed {
                return Err(Error::NotConfirmed.into());
            }
            if device.kind() == DeviceKind::OutOfBand {
                let sent = self.two_factor.send_challenge(cx.caller, &id).await?;
                state["masked_destination"] = sent.masked_destination.into();
            }
        }
        Ok(Requested::InProcess(state))
    }

    async fn confirm(
        &self,
        cx: Context<'_>,
        state: &Value,
        data: &Value,
    ) -> Result<bool, ConfirmError> {
        let code = text(data, "code").ok_or(ConfirmError::InvalidData("no code"))?;
        let device = match (device_id(state)?, device_id(data)?) {
            (Some(pinned), Some(given)) if pinned != given => return Ok(false),
            (pinned, given) => pinned.or(given),
        };
        let verification = match device {
            Some(device) => self.two_factor.verify(cx.caller, &device, code).await,
            None => self.two_factor.verify_any(cx.caller, code).await,
        };
        answer(verification)
    }
}

/// A wrong code is a rejected answer; anything else that failed is an error.
fn answer(result: Result<Verification, Error>) -> Result<bool, ConfirmError> {
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.is_wrong_code() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// The `"device_id"` of `value`, if it has one; an error if it is not a device id.
fn device_id(value: &Value) -> Result<Option<DeviceId>, ConfirmError> {
    match value.get("device_id") {
        None | Some(Value::Null) => Ok(None),
        Some(id) => id
            .as_str()
            .and_then(|id| id.parse().ok())
            .map(Some)
            .ok_or(ConfirmError::InvalidData("invalid device_id")),
    }
}
