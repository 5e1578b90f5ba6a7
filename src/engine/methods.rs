//! The methods a user can set up: the one list that enrolment pages and the API offer.

use crate::device::{Device, DeviceConfig, DeviceKind};

use super::TwoFactor;

/// A way to set up a second factor, as enrolment offers it.
///
/// [`TwoFactor::methods`] lists them; a front-end shows each under its [`key`](Method::key)
/// (names and help texts are the front-end's, so that they can be translated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    key: String,
    kind: DeviceKind,
}

impl Method {
    /// The stable key: `totp`, `hotp`, `backup_codes`, or an out-of-band channel's name
    /// (`email`, `sms`, `call`, …).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The kind of device the method adds.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// Whether the method is set up by scanning or typing a shared secret into an app or a
    /// token (TOTP, HOTP).
    pub fn is_shared_secret(&self) -> bool {
        matches!(self.kind, DeviceKind::Totp | DeviceKind::Hotp)
    }

    /// Whether codes are sent to a destination (an out-of-band channel).
    pub fn is_out_of_band(&self) -> bool {
        self.kind == DeviceKind::OutOfBand
    }

    fn new(key: &str, kind: DeviceKind) -> Self {
        Method {
            key: key.to_owned(),
            kind,
        }
    }
}

impl TwoFactor {
    /// The methods this engine can set up, in the order to offer them: authenticator app
    /// (TOTP), hardware token (HOTP), backup codes, then each channel that has a sender, by
    /// name.
    pub fn methods(&self) -> Vec<Method> {
        let built_in = [
            Method::new("totp", DeviceKind::Totp),
            Method::new("hotp", DeviceKind::Hotp),
            Method::new("backup_codes", DeviceKind::BackupCodes),
        ];
        // `channels` iterates a sorted map: the order is the channels' names.
        let channels = self
            .channels()
            .map(|channel| Method::new(channel, DeviceKind::OutOfBand));
        #[cfg(feature = "webauthn")]
        let keys = self
            .relying_party()
            .map(|_| Method::new("webauthn", DeviceKind::WebAuthn));
        #[cfg(not(feature = "webauthn"))]
        let keys = None;
        let methods = built_in.into_iter().chain(keys).chain(channels);
        #[cfg(feature = "push")]
        let methods = methods.chain(
            self.push_enabled()
                .then(|| Method::new("push", DeviceKind::Push)),
        );
        methods.collect()
    }

    /// The method with `key`, if this engine has it.
    pub fn method(&self, key: &str) -> Option<Method> {
        self.methods().into_iter().find(|method| method.key == key)
    }
}

impl Device {
    /// The key of the [`Method`] that added the device: its out-of-band channel, or its
    /// kind.
    pub fn method_key(&self) -> &str {
        match &self.config {
            DeviceConfig::OutOfBand { channel, .. } => channel,
            _ => self.kind().as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::delivery::ConsoleSender;
    use crate::{MemoryStore, ServerKey, TwoFactor};

    #[test]
    fn built_in_methods_come_first_then_channels_by_name() {
        let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate())
            .with_sender("sms", ConsoleSender::new())
            .with_sender("email", ConsoleSender::new());
        let keys: Vec<String> = two_factor
            .methods()
            .iter()
            .map(|m| m.key().to_owned())
            .collect();
        assert_eq!(keys, ["totp", "hotp", "backup_codes", "email", "sms"]);
        assert!(two_factor.method("sms").unwrap().is_out_of_band());
        assert!(two_factor.method("totp").unwrap().is_shared_secret());
        assert!(two_factor.method("fax").is_none());
    }
}
