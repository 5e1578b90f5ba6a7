//! Without sealing keys, the process warns once that device secrets are stored unencrypted:
//! at the first secret sealed or opened, not at every one.
//!
//! One test, the only one in this binary: the warning is once per process, and `tracing`
//! caches per call site whether anyone listens.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tower_otp::clock::{Clock, ManualClock, Timestamp};
use tower_otp::device::{SealingKey, SecretSealer, TotpSettings};
use tower_otp::{MemoryStore, ServerKey, TwoFactor, UserId};

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
    fn warnings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }
}

/// Seals (enrols) and opens (confirms) one device for each of `users`, a first device each.
async fn enrol_and_confirm(two_factor: &TwoFactor, clock: &ManualClock, users: [&str; 2]) {
    for name in users {
        let user = UserId::new(name).unwrap();
        let enrolment = two_factor
            .enroll_totp(&user, "Phone", name, TotpSettings::default())
            .await
            .unwrap();
        let code = enrolment.current_code(clock.now());
        two_factor
            .confirm_device(&user, &enrolment.device.id, &code)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn plaintext_mode_warns_once_per_process() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_015));

    let sealing = SecretSealer::new(vec![SealingKey::new("k1", &[1; 32]).unwrap()]).unwrap();
    let sealed = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[2; 32]).unwrap())
        .with_clock(clock.clone())
        .with_sealer(sealing);
    enrol_and_confirm(&sealed, &clock, ["alice", "bob"]).await;
    assert_eq!(
        captured.warnings(),
        Vec::<String>::new(),
        "sealing: no warning"
    );

    let plain = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[2; 32]).unwrap())
        .with_clock(clock.clone());
    enrol_and_confirm(&plain, &clock, ["alice", "bob"]).await;
    enrol_and_confirm(&plain, &clock, ["carol", "dave"]).await;
    let warnings = captured.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("stored unencrypted"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("SecretSealer::new"), "{}", warnings[0]);
}
