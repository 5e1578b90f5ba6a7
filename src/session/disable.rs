//! Turning the second factor off through the session: one code, then every device goes.

use super::{OtpSession, SessionError, SessionToken};

/// The second factor was turned off ([`OtpSession::disable_second_factor`]).
#[derive(Clone, Debug)]
pub struct SecondFactorDisabled {
    /// How many devices were removed.
    pub removed: u64,
    /// The session's new id, when the code verified an own session (see
    /// [`SessionVerification::token`](super::SessionVerification::token)).
    pub token: Option<SessionToken>,
}

impl OtpSession {
    /// Removes every device of the session's user and forgets the user's remembered
    /// browsers, once `code`, from one of the user's confirmed devices, has verified the
    /// session: the second factor itself, not only the password or an old verification,
    /// asks for it.
    ///
    /// A user with no confirmed device has nothing that could give a code: pending devices
    /// are removed without one. `Ok(None)`: the user has a confirmed device and no code was
    /// given.
    pub async fn disable_second_factor(
        &self,
        code: Option<&str>,
    ) -> Result<Option<SecondFactorDisabled>, SessionError> {
        let two_factor = self.two_factor();
        let user = self.user().await?.ok_or(SessionError::NotAuthenticated)?;
        if !two_factor.is_configured(&user).await? {
            let removed = two_factor.delete_all_devices(&self.caller().await?).await?;
            return Ok(Some(SecondFactorDisabled {
                removed,
                token: None,
            }));
        }
        let Some(code) = code else {
            return Ok(None);
        };
        let verified = self.verify_any(code).await?;
        // The code just verified the session: it acts as a freshly verified caller now.
        let removed = two_factor.delete_all_devices(&self.caller().await?).await?;
        // Remembered browsers stand for devices that are gone.
        two_factor.forget_all_browsers(&user).await?;
        Ok(Some(SecondFactorDisabled {
            removed,
            token: verified.token,
        }))
    }
}
