//! Run with `cargo run --example new_device_notice`
//!
//! Tells users whenever a second factor becomes usable on their account, or is removed, as
//! OWASP's Multifactor Authentication Cheat Sheet advises: someone who got into an account
//! cannot then quietly add a device of their own.
//!
//! A hook on the event bus picks the events and queues a notice; a background task sends
//! the notices, so a slow mail server never holds up a request (hooks run in line, on the
//! request's task). The mailer here prints to the console and keeps an outbox; a real one
//! would send email. Runs a short flow on the in-memory store and exits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tower_otp::device::TotpSettings;
use tower_otp::events::{Event, EventKind};
use tower_otp::{Caller, DeviceKind, MemoryStore, ServerKey, TwoFactor, UserId};

/// A message for a user.
#[derive(Clone, Debug)]
pub(crate) struct Notice {
    pub(crate) to: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Stands in for an email service: prints each notice and keeps it.
#[derive(Clone, Debug, Default)]
struct ConsoleMailer {
    outbox: Arc<Mutex<Vec<Notice>>>,
}

impl ConsoleMailer {
    async fn send(&self, notice: Notice) {
        println!(
            "--- mail to {} ---\nSubject: {}\n\n{}\n",
            notice.to, notice.subject, notice.body
        );
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(notice);
    }

    fn sent(&self) -> Vec<Notice> {
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The notice an event calls for, if any, to the user's own address (the application's
/// user records, not the second factor's).
fn notice_for(event: &Event, contacts: &HashMap<String, String>) -> Option<Notice> {
    let device = event.device.as_ref();
    let what = match (&event.kind, device) {
        // A device counts once it can be used: TOTP, HOTP and out-of-band devices when
        // confirmed, backup codes as soon as they are added (they need no confirming).
        (EventKind::DeviceConfirmed, Some(device)) => format!(
            "A new second factor, \"{}\" ({}), was added to your account.",
            device.name, device.kind
        ),
        (EventKind::DeviceAdded, Some(device)) if device.kind == DeviceKind::BackupCodes => {
            "Backup codes were created for your account.".to_owned()
        }
        (EventKind::DeviceRemoved, Some(device)) => format!(
            "The second factor \"{}\" ({}) was removed from your account.",
            device.name, device.kind
        ),
        (EventKind::AllDevicesRemoved { .. }, _) => {
            "Two-factor authentication was turned off for your account.".to_owned()
        }
        _ => return None,
    };
    let to = contacts.get(event.user.as_str())?.clone();
    let from = event
        .request
        .as_ref()
        .map(|request| {
            let address = request
                .client_addr
                .map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
            let agent = request
                .user_agent
                .as_deref()
                .unwrap_or("an unknown browser");
            format!(" It was done from {address} with {agent}.")
        })
        .unwrap_or_default();
    Some(Notice {
        to,
        subject: "Security alert: your two-factor settings changed".to_owned(),
        body: format!(
            "{what}{from} (Unix time {}.)\n\
             If this was not you, sign in, remove devices you do not know and change your \
             password.",
            event.at
        ),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sent = run().await?;
    eprintln!("{} notices sent", sent.len());
    Ok(())
}

/// Runs the flow; returns the notices sent.
pub(crate) async fn run() -> Result<Vec<Notice>, Box<dyn std::error::Error>> {
    let contacts = HashMap::from([("alice".to_owned(), "alice@example.com".to_owned())]);
    let mailer = ConsoleMailer::default();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::generate());

    // The hook only decides and queues: it must return quickly. A full queue drops the
    // notice (and says so) rather than stall a request.
    let (queue, mut notices) = mpsc::channel::<Notice>(256);
    two_factor.events().on(move |event| {
        if let Some(notice) = notice_for(event, &contacts)
            && queue.try_send(notice).is_err()
        {
            eprintln!("notice queue full: a notice was dropped");
        }
    });
    let delivery = tokio::spawn({
        let mailer = mailer.clone();
        async move {
            while let Some(notice) = notices.recv().await {
                mailer.send(notice).await;
            }
        }
    });

    let alice = UserId::new("alice")?;
    eprintln!("# alice enrols an authenticator app: no notice until it is confirmed");
    let enrolment = two_factor
        .enroll_totp(&alice, "Phone", "alice", TotpSettings::default())
        .await?;
    eprintln!("# she confirms it: notice");
    let code = enrolment.current_code(two_factor.now());
    let confirmed = two_factor
        .confirm_device(&alice, &enrolment.device.id, &code)
        .await?;
    // Further factor changes need a caller who verified with a code moments ago.
    let fresh = Caller::verified(&confirmed.verification);
    eprintln!("# she creates backup codes: notice");
    two_factor.generate_backup_codes(&fresh).await?;
    eprintln!("# she removes the app: notice");
    two_factor
        .delete_device(&fresh, &enrolment.device.id)
        .await?;

    // Dropping the bus drops the hook and with it the queue's sender: the delivery task
    // sends what is queued and stops.
    drop(two_factor);
    tokio::time::timeout(Duration::from_secs(5), delivery).await??;
    Ok(mailer.sent())
}
