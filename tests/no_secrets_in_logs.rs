//! Nothing secret reaches `tracing` output or `Debug` output: not device secrets, not codes,
//! not backup codes, not out-of-band codes, not provisioning URIs.
//!
//! One test, the only one in this binary: `tracing` caches per call site whether anyone
//! listens, and a test running alongside, with no subscriber, can have that cached as "no one"
//! just as this test's thread-local subscriber arrives, losing the lines this test looks for.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_otp::Caller;
use tower_otp::clock::{ManualClock, Timestamp};
use tower_otp::device::{
    HotpSettings, Message, OutboxSender, SealingKey, SecretSealer, SendError, TotpSettings,
    out_of_band, sender_fn,
};
use tower_otp::otp::OtpKey;
use tower_otp::store::{MemoryStore, Store};
use tower_otp::{ServerKey, TwoFactor, UserId};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Everything secret that a flow produced, and everything it printed with `{:?}`.
#[derive(Default)]
struct Flow {
    secrets: Vec<String>,
    debug: String,
}

async fn enrol_verify_and_fail(flow: &mut Flow) {
    let store = MemoryStore::new();
    let sealer = SecretSealer::new(vec![SealingKey::new("k1", &[5; 32]).unwrap()]).unwrap();
    let two_factor = TwoFactor::new(store.clone(), ServerKey::new(&[3; 32]).unwrap())
        .with_issuer("Leak Test")
        .unwrap()
        .with_sealer(sealer);
    let user = UserId::new("alice").unwrap();
    let mut debug = |value: &dyn std::fmt::Debug| flow.debug.push_str(&format!("{value:?}\n"));

    let totp = two_factor
        .enroll_totp(
            &Caller::administrator(user.clone()),
            "Phone",
            "alice@example.com",
            TotpSettings::default(),
        )
        .await
        .unwrap();
    debug(&totp);
    let code = totp.current_code(two_factor.now());
    let confirmed = two_factor
        .confirm_device(&Caller::administrator(user.clone()), &totp.device.id, &code)
        .await
        .unwrap();
    debug(&confirmed);
    let replay = two_factor
        .verify(&user, &totp.device.id, &code)
        .await
        .unwrap_err();
    debug(&replay);
    let next = OtpKey::new(totp.secret.clone(), Default::default(), Default::default())
        .hotp(two_factor.now().as_secs() / 30 + 1);
    let wrong = two_factor
        .verify(&user, &totp.device.id, "123456")
        .await
        .unwrap_err();
    debug(&wrong);
    let throttled = two_factor
        .verify(&user, &totp.device.id, next.reveal())
        .await
        .unwrap_err();
    debug(&throttled);
    debug(&next);

    let hotp = two_factor
        .enroll_hotp(
            &Caller::administrator(user.clone()),
            "Token",
            "alice@example.com",
            HotpSettings::default(),
        )
        .await
        .unwrap();
    debug(&hotp);
    let hotp_code = hotp.current_code(two_factor.now());
    two_factor
        .confirm_device(
            &Caller::administrator(user.clone()),
            &hotp.device.id,
            &hotp_code,
        )
        .await
        .unwrap();

    let backup = two_factor
        .generate_backup_codes(&Caller::administrator(user.clone()))
        .await
        .unwrap();
    debug(&backup);
    let first = backup.codes.iter().next().unwrap().to_owned();
    let used = two_factor.verify_any(&user, &first).await.unwrap();
    debug(&used);
    let again = two_factor.verify_any(&user, &first).await.unwrap_err();
    debug(&again);
    debug(&two_factor);
    debug(&store.list_devices(&user).await.unwrap());

    for enrolment in [&totp, &hotp] {
        flow.secrets.push(enrolment.secret.to_base32().to_string());
        flow.secrets.push(enrolment.uri.as_str().to_owned());
        flow.secrets.push(hex(enrolment.secret.expose_bytes()));
        flow.secrets
            .push(format!("{:?}", enrolment.secret.expose_bytes()));
    }
    flow.secrets
        .extend([code, hotp_code, next.reveal().to_owned()]);
    for code in backup.codes.iter() {
        flow.secrets.push(code.to_owned());
        flow.secrets.push(code.replace('-', ""));
    }
    // The sealed form is not secret without the key, but it has no business in logs either.
    for device in store.list_devices(&user).await.unwrap() {
        let json = serde_json::to_value(&device.config).unwrap();
        if let Some(sealed) = json.get("secret").and_then(|s| s.as_str()) {
            flow.secrets.push(sealed.to_owned());
        }
    }
}

/// An email device confirmed with the code it was sent, a code sent again, a wrong code, the
/// right code while throttled and then in time, and a code the sender could not deliver.
async fn out_of_band_codes(flow: &mut Flow) {
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let store = MemoryStore::new().with_clock(clock.clone());
    let outbox = OutboxSender::new();
    let failing =
        sender_fn(|_: Message| async { Err(SendError::Rejected("no such number".into())) });
    let two_factor = TwoFactor::new(store.clone(), ServerKey::new(&[9; 32]).unwrap())
        .with_clock(clock.clone())
        .with_sender(out_of_band::EMAIL, outbox.clone())
        .with_sender("voice", failing);
    let user = UserId::new("alice").unwrap();
    let mut debug = |value: &dyn std::fmt::Debug| flow.debug.push_str(&format!("{value:?}\n"));
    let last_code = || outbox.last_code_for("alice@example.com").unwrap();

    let device = two_factor
        .add_out_of_band_device(
            &Caller::administrator(user.clone()),
            "Mail",
            out_of_band::EMAIL,
            "alice@example.com",
        )
        .await
        .unwrap();
    debug(&two_factor.send_challenge(&user, &device.id).await);
    let first = last_code();
    two_factor
        .confirm_device(&Caller::administrator(user.clone()), &device.id, &first)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    debug(&two_factor.send_challenge(&user, &device.id).await);
    let second = last_code();
    let wrong: String = second
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    debug(&two_factor.verify(&user, &device.id, &wrong).await);
    debug(&two_factor.verify(&user, &device.id, &second).await);
    clock.advance(Duration::from_secs(2));
    let verified = two_factor.verify(&user, &device.id, &second).await;
    assert!(verified.is_ok());
    debug(&verified);
    let phone = two_factor
        .add_out_of_band_device(
            &Caller::administrator(user.clone()),
            "Phone",
            "voice",
            "+31612345658",
        )
        .await
        .unwrap();
    debug(&two_factor.send_challenge(&user, &phone.id).await);
    for message in outbox.messages() {
        debug(&message);
    }
    debug(&two_factor);
    debug(&store);
    flow.secrets.extend([first, second]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn no_secret_code_or_uri_appears_in_trace_output_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let mut flow = Flow::default();
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                enrol_verify_and_fail(&mut flow).await;
                out_of_band_codes(&mut flow).await;
            });
    });
    let logs = captured.text();
    // The flow did log: verifications, failures, devices added.
    assert!(logs.contains("second factor verified"), "{logs}");
    assert!(logs.contains("verification failed"), "{logs}");
    assert!(logs.contains("device added"), "{logs}");
    assert!(logs.contains("challenge sent"), "{logs}");
    assert!(logs.contains("challenge not delivered"), "{logs}");
    assert!(flow.secrets.len() > 20);
    for secret in &flow.secrets {
        assert!(
            !contains(&logs, secret),
            "a secret appears in the logs: {secret}"
        );
        assert!(
            !contains(&flow.debug, secret),
            "a secret appears in Debug output: {secret}"
        );
    }
}

/// Whether `needle` appears in `haystack`; a numeric code only counts as a whole number, so
/// that a timestamp or an id that happens to contain its digits is not taken for a leak.
fn contains(haystack: &str, needle: &str) -> bool {
    if !needle.bytes().all(|b| b.is_ascii_digit()) {
        return haystack.contains(needle);
    }
    haystack.match_indices(needle).any(|(at, _)| {
        let before = haystack[..at].bytes().next_back();
        let after = haystack[at + needle.len()..].bytes().next();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}
