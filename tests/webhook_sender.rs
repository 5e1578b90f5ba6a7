//! `WebhookSender` against a small HTTP server that the test runs on 127.0.0.1.

#![cfg(feature = "webhook")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tower_otp::device::{OutboxSender, Sender, Template, WebhookSender, out_of_band};
use tower_otp::store::MemoryStore;
use tower_otp::{Error, ServerKey, TwoFactor, UserId};

/// One request as the server received it.
#[derive(Clone, Debug, Default)]
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// Starts a server on a free loopback port that answers every request with `status` (or
/// never, for `None`); returns its base URL and the requests it received.
async fn server(status: Option<u16>) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let received: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut reader = BufReader::new(read);
                let mut request = Request::default();
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let mut parts = line.split_whitespace();
                request.method = parts.next().unwrap_or_default().to_owned();
                request.target = parts.next().unwrap_or_default().to_owned();
                loop {
                    line.clear();
                    reader.read_line(&mut line).await.unwrap();
                    let header = line.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        request.headers.push((name.into(), value.trim().into()));
                    }
                }
                let length: usize = request
                    .header("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                request.body = String::from_utf8(body).unwrap();
                log.lock().unwrap().push(request);
                let Some(status) = status else {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                };
                let response = format!(
                    "HTTP/1.1 {status} Whatever\r\nlocation: http://127.0.0.1:9/elsewhere\r\n\
                     content-length: 0\r\nconnection: close\r\n\r\n"
                );
                write.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    (base, received)
}

fn alice() -> UserId {
    UserId::new("alice").unwrap()
}

#[tokio::test]
async fn a_code_is_posted_as_json_and_confirms_the_device() {
    let (base, received) = server(Some(202)).await;
    let sender = WebhookSender::new(&format!("{base}/v1/sms?account=42"))
        .unwrap()
        .with_header("authorization", "Bearer gateway-token")
        .unwrap()
        .with_template(Template::new("ACME code {code}").unwrap());
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[6; 32]).unwrap())
        .with_sender(out_of_band::SMS, sender);
    let device = two_factor
        .add_out_of_band_device(&alice(), "Phone", "sms", "+31 6 1234 5658")
        .await
        .unwrap();
    let sent = two_factor
        .send_challenge(&alice(), &device.id)
        .await
        .unwrap();

    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/v1/sms?account=42");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer gateway-token")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["to"], "+31612345658");
    assert_eq!(body["channel"], "sms");
    assert_eq!(body["expires_at"], sent.expires_at.as_secs());
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(body["text"], format!("ACME code {code}"));

    two_factor
        .confirm_device(&alice(), &device.id, &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_call_goes_through_a_voice_gateway_and_reads_the_digits_out() {
    let (base, received) = server(Some(200)).await;
    let sender = WebhookSender::new(&format!("{base}/v1/call"))
        .unwrap()
        .with_template(Template::spoken());
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[6; 32]).unwrap())
        .with_sender(out_of_band::CALL, sender);
    let device = two_factor
        .add_out_of_band_device(&alice(), "Landline", out_of_band::CALL, "0031 20 555 0158")
        .await
        .unwrap();
    assert_eq!(
        device.masked_destination().as_deref(),
        Some("+31 *******58")
    );
    let sent = two_factor
        .send_challenge(&alice(), &device.id)
        .await
        .unwrap();
    assert_eq!(sent.masked_destination, "+31 *******58");

    let body = received.lock().unwrap()[0].json();
    assert_eq!(body["to"], "+31205550158");
    assert_eq!(body["channel"], "call");
    let code = body["code"].as_str().unwrap().to_owned();
    let spoken: Vec<String> = code.chars().map(String::from).collect();
    let spoken = spoken.join(", ");
    let text = body["text"].as_str().unwrap();
    assert_eq!(text.matches(&spoken).count(), 2, "{text}");
    two_factor
        .confirm_device(&alice(), &device.id, &code)
        .await
        .unwrap();
}

#[tokio::test]
async fn non_success_answers_are_errors_without_the_code_or_the_url() {
    for (status, kind) in [
        (400, "delivery_rejected"),
        (404, "delivery_rejected"),
        (429, "delivery_unavailable"),
        (500, "delivery_unavailable"),
        (503, "delivery_unavailable"),
        (302, "sender_misconfigured"),
    ] {
        let (base, received) = server(Some(status)).await;
        let sender = WebhookSender::new(&format!("{base}/send?key=gateway-key")).unwrap();
        let message = outbox_message().await;
        let error = sender.send(&message).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{status}");
        let text = error.to_string();
        assert!(text.contains(&status.to_string()), "{text}");
        assert!(!text.contains(message.code()), "{text}");
        assert!(!text.contains("gateway-key"), "{text}");
        // A redirect is not followed.
        assert_eq!(received.lock().unwrap().len(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_failed_post_leaves_no_code_behind() {
    let (base, _) = server(Some(500)).await;
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[6; 32]).unwrap())
        .with_sender(out_of_band::SMS, WebhookSender::new(&base).unwrap());
    let device = two_factor
        .add_out_of_band_device(&alice(), "Phone", "sms", "+31612345658")
        .await
        .unwrap();
    let error = two_factor
        .send_challenge(&alice(), &device.id)
        .await
        .unwrap_err();
    assert!(matches!(&error, Error::Delivery(e) if e.kind() == "delivery_unavailable"));
    // Not held back by the cooldown: the failed code was withdrawn.
    assert_eq!(
        two_factor
            .send_challenge(&alice(), &device.id)
            .await
            .unwrap_err()
            .kind(),
        "delivery_failed"
    );
}

#[tokio::test]
async fn a_silent_gateway_times_out_and_a_closed_port_is_unavailable() {
    let (base, received) = server(None).await;
    let sender = WebhookSender::new(&base)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let message = outbox_message().await;
    let started = std::time::Instant::now();
    assert_eq!(
        sender.send(&message).await.unwrap_err().kind(),
        "delivery_timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(received.lock().unwrap().len(), 1);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sender = WebhookSender::new(&format!("http://127.0.0.1:{closed}/send")).unwrap();
    assert_eq!(
        sender.send(&message).await.unwrap_err().kind(),
        "delivery_unavailable"
    );
}

/// A real message, as `TwoFactor` makes it, caught by an outbox.
async fn outbox_message() -> tower_otp::device::Message {
    let outbox = OutboxSender::new();
    let two_factor = TwoFactor::new(MemoryStore::new(), ServerKey::new(&[6; 32]).unwrap())
        .with_sender(out_of_band::SMS, outbox.clone());
    let device = two_factor
        .add_out_of_band_device(&alice(), "Phone", "sms", "+31612345658")
        .await
        .unwrap();
    two_factor
        .send_challenge(&alice(), &device.id)
        .await
        .unwrap();
    outbox.last_for("+31612345658").unwrap()
}
