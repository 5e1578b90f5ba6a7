//! `SmtpSender` against a tiny SMTP sink that the test runs on 127.0.0.1.

#![cfg(feature = "smtp")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tower_otp::device::{Sender, SmtpSender, Template, out_of_band};
use tower_otp::store::MemoryStore;
use tower_otp::{Error, ServerKey, TwoFactor, UserId};

/// One mail as the sink received it.
#[derive(Clone, Debug, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

/// How the sink answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    /// `RCPT TO` gets this reply.
    RefuseRecipient(&'static str),
    /// Accepts the connection and says nothing.
    Silent,
}

/// Starts an SMTP sink on a free loopback port; returns the port and what it received.
async fn sink(behaviour: Behaviour) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                if let Behaviour::Silent = behaviour {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                let mut mail = Received::default();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &str = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250 sink\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail.from = line[10..].trim().to_owned();
                        "250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        match behaviour {
                            Behaviour::RefuseRecipient(reply) => reply,
                            _ => {
                                mail.to.push(line[8..].trim().to_owned());
                                "250 OK\r\n"
                            }
                        }
                    } else if upper == "DATA" {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            mail.data.push_str(&data);
                            mail.data.push('\n');
                        }
                        store.lock().unwrap().push(std::mem::take(&mut mail));
                        "250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else if upper == "RSET" || upper == "NOOP" {
                        "250 OK\r\n"
                    } else {
                        "502 not implemented\r\n"
                    };
                    write.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (port, received)
}

fn two_factor(sender: SmtpSender) -> TwoFactor {
    TwoFactor::new(MemoryStore::new(), ServerKey::new(&[4; 32]).unwrap())
        .with_sender(out_of_band::EMAIL, sender)
}

/// The six digits after "code: " in a mail body.
fn code_in(data: &str) -> String {
    let at = data.find("code: ").expect("a code in the mail") + 6;
    data[at..at + 6].to_owned()
}

#[tokio::test]
async fn a_code_is_mailed_and_confirms_the_device() {
    let (port, received) = sink(Behaviour::Accept).await;
    let sender = SmtpSender::unencrypted_localhost(port, "ACME Security <security@example.com>")
        .unwrap()
        .with_subject("Your ACME code")
        .with_template(Template::new("Your code: {code} (valid {minutes} minutes)").unwrap());
    let two_factor = two_factor(sender);
    let alice = UserId::new("alice").unwrap();
    let device = two_factor
        .add_out_of_band_device(&alice, "Mail", "email", "alice@example.com")
        .await
        .unwrap();
    two_factor.send_challenge(&alice, &device.id).await.unwrap();

    let mails = received.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "<security@example.com>");
    assert_eq!(mail.to, vec!["<alice@example.com>".to_owned()]);
    assert!(
        mail.data.contains("Subject: Your ACME code"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("To: alice@example.com"), "{}", mail.data);
    assert!(mail.data.contains("(valid 5 minutes)"), "{}", mail.data);
    let code = code_in(&mail.data);
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");

    two_factor
        .confirm_device(&alice, &device.id, &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refused_recipient_is_a_rejection_without_the_code() {
    let (port, received) = sink(Behaviour::RefuseRecipient("550 no such user\r\n")).await;
    let sender = SmtpSender::unencrypted_localhost(port, "security@example.com").unwrap();
    let two_factor = two_factor(sender);
    let alice = UserId::new("alice").unwrap();
    let device = two_factor
        .add_out_of_band_device(&alice, "Mail", "email", "alice@example.com")
        .await
        .unwrap();
    let error = two_factor
        .send_challenge(&alice, &device.id)
        .await
        .unwrap_err();
    let Error::Delivery(cause) = &error else {
        panic!("not a delivery error: {error:?}");
    };
    assert_eq!(cause.kind(), "delivery_rejected");
    assert_eq!(
        cause.to_string(),
        "the message was refused: SMTP status 550"
    );
    assert!(received.lock().unwrap().is_empty());
    // The code was withdrawn, so another may be sent at once (and is refused the same way).
    let again = two_factor.send_challenge(&alice, &device.id).await;
    assert_eq!(again.unwrap_err().kind(), "delivery_failed");
}

#[tokio::test]
async fn a_temporary_refusal_is_unavailability() {
    let (port, _) = sink(Behaviour::RefuseRecipient("451 try later\r\n")).await;
    let sender = SmtpSender::unencrypted_localhost(port, "security@example.com").unwrap();
    let message = outbox_message().await;
    let error = sender.send(&message).await.unwrap_err();
    assert_eq!(error.kind(), "delivery_unavailable");
    assert!(!error.to_string().contains(message.code()));
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_closed_port_is_unavailable() {
    let (port, _) = sink(Behaviour::Silent).await;
    let sender = SmtpSender::unencrypted_localhost(port, "security@example.com")
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let message = outbox_message().await;
    let started = std::time::Instant::now();
    let error = sender.send(&message).await.unwrap_err();
    assert_eq!(error.kind(), "delivery_timeout", "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A port nobody listens on: bind one, then close it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sender = SmtpSender::unencrypted_localhost(closed, "security@example.com").unwrap();
    let error = sender.send(&message).await.unwrap_err();
    assert_eq!(error.kind(), "delivery_unavailable", "{error}");
}

/// A real message, as `TwoFactor` makes it, caught by an outbox.
async fn outbox_message() -> tower_otp::device::Message {
    let outbox = tower_otp::device::OutboxSender::new();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[4; 32]).unwrap())
        .with_sender(out_of_band::EMAIL, outbox.clone());
    let alice = UserId::new("alice").unwrap();
    let device = two_factor
        .add_out_of_band_device(&alice, "Mail", "email", "alice@example.com")
        .await
        .unwrap();
    two_factor.send_challenge(&alice, &device.id).await.unwrap();
    outbox.last_for("alice@example.com").unwrap()
}
