//! `Secret::from_base32`: never a panic; what it accepts has a length within the limits and
//! comes back unchanged from its own base32.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_otp::otp::Secret;

fuzz_target!(|input: &str| {
    let Ok(secret) = Secret::from_base32(input) else {
        return;
    };
    assert!((Secret::MIN_LEN..=Secret::MAX_LEN).contains(&secret.len()));
    let encoded = secret.to_base32();
    assert_eq!(Secret::from_base32(&encoded).as_ref(), Ok(&secret));
    assert_eq!(
        Secret::from_base32(&encoded.to_lowercase()).as_ref(),
        Ok(&secret)
    );
});
