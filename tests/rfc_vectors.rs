//! Every RFC 4226 and RFC 6238 test vector, asserted value by value.

use serde_json::Value;
use tower_otp::otp::{Algorithm, Digits, OtpKey, Secret, Token, TotpParams};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex_secret(hex: &str) -> Secret {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Secret::from_bytes(bytes).unwrap()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing {field}"))
}

#[test]
fn rfc4226_hotp_vectors() {
    let doc = load("rfc4226_hotp.json");
    let secret = hex_secret(str_of(&doc, "secret_hex"));
    assert_eq!(
        Secret::from_base32(str_of(&doc, "secret_base32")).unwrap(),
        secret
    );
    let six = OtpKey::new(secret.clone(), Algorithm::Sha1, Digits::SIX);
    let eight = OtpKey::new(secret, Algorithm::Sha1, Digits::EIGHT);
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 10);
    for v in vectors {
        let counter = v["counter"].as_u64().unwrap();
        let want6 = str_of(v, "hotp");
        let want8 = str_of(v, "hotp_8_digits");
        assert_eq!(six.hotp(counter).reveal(), want6, "HOTP counter {counter}");
        assert_eq!(
            eight.hotp(counter).reveal(),
            want8,
            "HOTP-8 counter {counter}"
        );
        assert!(
            six.hotp(counter)
                .matches(&Token::parse(want6, Digits::SIX).unwrap())
        );
    }
}

#[test]
fn rfc6238_totp_vectors() {
    let doc = load("rfc6238_totp.json");
    let params = TotpParams {
        step: doc["step_seconds"].as_u64().unwrap(),
        t0: doc["t0"].as_u64().unwrap(),
    };
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 18);
    for v in vectors {
        let name = str_of(v, "algorithm");
        let algorithm: Algorithm = name.parse().unwrap();
        let seed = &doc["seeds"][name];
        let secret = hex_secret(str_of(seed, "hex"));
        assert_eq!(
            Secret::from_base32(str_of(seed, "base32")).unwrap(),
            secret,
            "{name} seed"
        );
        let time = v["time"].as_u64().unwrap();
        let step = params.time_step(time).unwrap();
        assert_eq!(
            format!("{step:016X}"),
            str_of(v, "t_hex"),
            "T for time {time}"
        );
        let eight = OtpKey::new(secret.clone(), algorithm, Digits::EIGHT);
        let six = OtpKey::new(secret, algorithm, Digits::SIX);
        assert_eq!(
            eight.hotp(step).reveal(),
            str_of(v, "totp"),
            "TOTP {name} at {time}"
        );
        assert_eq!(
            six.hotp(step).reveal(),
            str_of(v, "totp_6_digits"),
            "TOTP-6 {name} at {time}"
        );
    }
}

#[test]
fn seven_digit_codes_are_the_truncation_mod_ten_million() {
    // RFC 4226 counter 0: truncated decimal 1284755224, so 7 digits give 4755224.
    let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
    let seven = OtpKey::new(secret, Algorithm::Sha1, Digits::SEVEN);
    assert_eq!(seven.hotp(0).reveal(), "4755224");
}
