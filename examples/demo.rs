//! Run with `cargo run --example demo`
//!
//! Enrols a TOTP device for a user on the embedded in-memory store, prints its provisioning
//! URI, verifies codes (and shows a replay being refused), then issues and uses backup codes.
//! No server is needed.

use tower_otp::device::TotpSettings;
use tower_otp::store::MemoryStore;
use tower_otp::{ServerKey, TwoFactor, UserId};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A real application loads its server key from configuration, the same on every instance.
    let two_factor =
        TwoFactor::new(MemoryStore::new(), ServerKey::generate()).with_issuer("tower-otp demo");
    let alice = UserId::new("alice")?;

    let enrolment = two_factor
        .enroll_totp(
            &alice,
            "Phone",
            "alice@example.com",
            TotpSettings::default(),
        )
        .await?;
    println!("Scan this in an authenticator app (it contains the secret; shown once):");
    println!("  {}", enrolment.uri.as_str());

    // The authenticator app would show this code now.
    let code = enrolment.current_code(two_factor.now());
    let confirmed = two_factor
        .confirm_device(&alice, &enrolment.device.id, &code)
        .await?;
    println!(
        "Device {:?} confirmed with the current code.",
        confirmed.device.name
    );

    match two_factor.verify(&alice, &enrolment.device.id, &code).await {
        Err(error) => println!(
            "Using the same code again is refused: {error} ({})",
            error.kind()
        ),
        Ok(_) => unreachable!("a replayed code must be refused"),
    }

    let backup = two_factor.generate_backup_codes(&alice).await?;
    println!("Backup codes (stored only as hashes; shown once):");
    for code in backup.codes.iter() {
        println!("  {code}");
    }
    let first = backup
        .codes
        .iter()
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let used = two_factor.verify_any(&alice, &first).await?;
    println!(
        "Verified with a backup code typed in lower case; {} remain.",
        used.backup_codes_remaining.unwrap_or(0)
    );
    let again = two_factor.verify_any(&alice, &first).await;
    println!(
        "The same backup code again: {}",
        again.err().map(|e| e.kind()).unwrap_or("accepted?!")
    );
    Ok(())
}
