//! What only the Redis store has: failing closed and reconnecting, the key layout (hash tags,
//! times to live, the session index), script reloading, damaged records, one round trip per
//! operation, and (ignored by default) its memory use per user and per session.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::redis_server::{RedisCluster, RedisServer, Reply, free_port, unique_prefix};
use sha2::Digest;
use tower_otp::clock::{Clock, SystemClock, Timestamp};
use tower_otp::confirm::{ConfirmationId, ConfirmationKey, ConfirmationRecord, ConfirmationStatus};
use tower_otp::device::{
    CodeHash, Device, DeviceId, DeviceState, SealingKey, SecretSealer, ThrottlePolicy,
    TotpSettings, UserId,
};
use tower_otp::session::{SessionKey, SessionRecord, UserTag, VerifiedBy};
use tower_otp::store::{
    AttemptPurpose, Challenge, DeviceInsert, DeviceLimits, RateBucket, RateKey, RateLimit,
    RedisConfig, RedisStore, Store, StoreError, SuccessProof,
};
use tower_otp::{DeviceKind, ServerKey, TwoFactor};

const HOUR: Duration = Duration::from_secs(3600);

/// One private server shared by the tests that do not stop it.
fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// One private cluster shared by the tests of this binary.
fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// The application's server key in these tests.
fn server_key() -> ServerKey {
    ServerKey::new(&[3; 32]).unwrap()
}

/// A client in a namespace of its own, its tags keyed as a `TwoFactor` keys them.
async fn store_on(server: &RedisServer) -> RedisStore {
    store_in(server, &unique_prefix(), &server_key()).await
}

async fn store_in(server: &RedisServer, prefix: &str, key: &ServerKey) -> RedisStore {
    let store = RedisConfig::server(server.url())
        .with_key_prefix(prefix)
        .connect()
        .await
        .expect("connect");
    store.bind_tag_key(key.tag_key());
    store
}

async fn store_on_cluster() -> RedisStore {
    let store = RedisConfig::cluster(shared_cluster().urls())
        .with_key_prefix(unique_prefix())
        .connect()
        .await
        .expect("connect");
    store.bind_tag_key(server_key().tag_key());
    store
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn hash(n: u32) -> CodeHash {
    serde_json::from_value(serde_json::json!(format!("{n:032x}"))).unwrap()
}

fn device(owner: &UserId, config: serde_json::Value) -> Device {
    Device {
        id: DeviceId::generate(),
        user: owner.clone(),
        name: "device".into(),
        confirmed: true,
        pending_until: None,
        is_default: false,
        created_at: Timestamp::from_secs(1),
        config: serde_json::from_value(config).unwrap(),
        state: DeviceState::default(),
    }
}

/// Inserts a device within the default limits, which it must not reach.
async fn insert(store: &RedisStore, device: &Device) {
    let inserted = store.insert_device(device, &DeviceLimits::default()).await;
    assert_eq!(inserted.unwrap(), DeviceInsert::Inserted);
}

fn totp(owner: &UserId) -> Device {
    device(
        owner,
        serde_json::json!({
            "kind": "totp", "secret": "plain:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "algorithm": "SHA1", "digits": 6, "step": 30, "t0": 0
        }),
    )
}

fn out_of_band(owner: &UserId) -> Device {
    device(
        owner,
        serde_json::json!({
            "kind": "out_of_band", "channel": "email", "destination": "a@example.com", "digits": 6
        }),
    )
}

fn session(owner: &UserId) -> SessionRecord {
    SessionRecord {
        user: owner.clone(),
        created_at: Timestamp::from_secs(1),
        expires_at: Timestamp::from_secs(10_000_000_000),
        verified: None,
        login: None,
    }
}

/// What [`populate`] created for one user.
struct Populated {
    backup: Device,
    oob: Device,
    sessions: Vec<SessionKey>,
}

/// Gives `owner` one key of every kind: devices, backup codes, a challenge, a failure count,
/// a stamp and two sessions.
async fn populate(store: &RedisStore, owner: &UserId) -> Populated {
    let totp = totp(owner);
    let backup = device(owner, serde_json::json!({"kind": "backup_codes"}));
    let oob = out_of_band(owner);
    for d in [&totp, &backup, &oob] {
        insert(store, d).await;
    }
    let codes: Vec<_> = (0..10).map(hash).collect();
    store
        .replace_backup_codes(owner, &backup.id, &codes)
        .await
        .unwrap();
    let now = SystemClock.now();
    let challenge = Challenge {
        hash: hash(1),
        expires_at: now.saturating_add(Duration::from_secs(300)),
        resend_after: now.saturating_add(Duration::from_secs(30)),
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    store
        .put_challenge(owner, &oob.id, &challenge, now)
        .await
        .unwrap();
    store
        .begin_attempt(
            owner,
            std::slice::from_ref(&totp.id),
            AttemptPurpose::Verify,
            &ThrottlePolicy::default(),
            now,
        )
        .await
        .unwrap();
    store.bump_user_stamp(owner).await.unwrap();
    let tag = store.user_tag(owner);
    let sessions = vec![
        SessionKey::new(tag.clone(), b"first"),
        SessionKey::new(tag, b"second"),
    ];
    for key in &sessions {
        store
            .save_session(key, &session(owner), HOUR)
            .await
            .unwrap();
    }
    Populated {
        backup,
        oob,
        sessions,
    }
}

/// The keys under `prefix` on one server.
/// The keys of users under `prefix` (not the store's one key of its own, the check value of
/// its tag key).
fn keys_on(server: &RedisServer, prefix: &str) -> Vec<String> {
    let check = format!("{prefix}:tag-key-check");
    let keys = server.query(&["KEYS", &format!("{prefix}:*")]).strings();
    keys.into_iter().filter(|k| *k != check).collect()
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, started: Instant) {
    let error = result.expect_err("the store should fail closed");
    assert_eq!(error.kind(), "store_unavailable", "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "took {:?}",
        started.elapsed()
    );
}

// ----- failing closed ----------------------------------------------------------------------

#[tokio::test]
async fn fails_closed_when_nothing_listens() {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let started = Instant::now();
    let result = RedisConfig::server(&url)
        .with_timeout(Duration::from_millis(500))
        .connect()
        .await;
    assert_unavailable(result, started);

    let started = Instant::now();
    let result = RedisConfig::cluster([url])
        .with_timeout(Duration::from_millis(500))
        .connect()
        .await;
    assert_unavailable(result, started);
}

#[tokio::test]
async fn connect_errors_say_what_redis_said() {
    let server = shared_server();
    let port = server.port();
    let error = RedisStore::connect(&format!("redis://127.0.0.1:{port}/99"))
        .await
        .expect_err("there is no database 99");
    let text = error.to_string();
    assert_eq!(error.kind(), "store_unavailable");
    assert!(text.contains("DB index is out of range"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port} (database 99)")),
        "{text}"
    );

    let error = RedisStore::connect(&format!("redis://:not-the-password@127.0.0.1:{port}/"))
        .await
        .expect_err("the server has no password");
    let text = error.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");

    let nothing = free_port();
    let error = RedisStore::connect(&format!("redis://127.0.0.1:{nothing}/"))
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{nothing}")), "{text}");
    assert!(text.contains("Connection refused (os error"), "{text}");
}

#[tokio::test]
async fn cluster_connect_errors_name_the_node_and_the_reason() {
    let nothing = free_port();
    let error = RedisStore::connect_cluster([format!("redis://127.0.0.1:{nothing}/")])
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "node 127.0.0.1:{nothing}: Connection refused (os error"
        )),
        "{text}"
    );

    // A server without cluster support: what it answered, and where.
    let server = shared_server();
    let error = RedisStore::connect_cluster([server.url()])
        .await
        .expect_err("not a cluster");
    let text = error.to_string();
    assert!(text.contains("cluster support disabled"), "{text}");
    assert!(
        text.contains(&format!("redis cluster at 127.0.0.1:{}", server.port())),
        "{text}"
    );
}

/// A server of the test's own (to stop or freeze), a store on it with `timeout`, and a device
/// in it.
async fn own_server_with_a_device(timeout: Duration) -> (RedisServer, RedisStore, Device) {
    let server = RedisServer::start();
    let store = RedisConfig::server(server.url())
        .with_timeout(timeout)
        .connect()
        .await
        .unwrap();
    let d = totp(&user("alice"));
    insert(&store, &d).await;
    (server, store, d)
}

/// Waits until the store answers again.
async fn until_back(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_closed_while_the_server_is_down_and_reconnects_after() {
    let (mut server, store, d) = own_server_with_a_device(Duration::from_millis(500)).await;
    let alice = d.user.clone();

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        assert_unavailable(store.get_device(&alice, &d.id).await, started);
        let started = Instant::now();
        let policy = ThrottlePolicy::default();
        let attempt = store
            .begin_attempt(
                &alice,
                std::slice::from_ref(&d.id),
                AttemptPurpose::Verify,
                &policy,
                Timestamp::EPOCH,
            )
            .await;
        assert_unavailable(attempt, started);
        let started = Instant::now();
        assert_unavailable(store.ping().await, started);
    }

    // Back (empty: nothing was persisted), the same client works again without help.
    server.restart();
    until_back(&store).await;
    insert(&store, &d).await;
    assert_eq!(store.get_device(&alice, &d.id).await.unwrap(), Some(d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_closed_when_the_server_hangs() {
    let (server, store, d) = own_server_with_a_device(Duration::from_millis(300)).await;
    let alice = d.user.clone();

    server.pause();
    let started = Instant::now();
    assert_unavailable(store.get_device(&alice, &d.id).await, started);
    let started = Instant::now();
    assert_unavailable(store.list_devices(&alice).await, started);
    server.resume();
    until_back(&store).await;
    // Replies that came too late were dropped, not handed to later requests.
    assert_eq!(store.get_device(&alice, &d.id).await.unwrap(), Some(d));
    assert_eq!(store.user_stamp(&alice).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_fails_closed_for_the_users_of_a_hung_node_only() {
    // A cluster of its own: one of its nodes is frozen.
    let cluster = RedisCluster::start();
    let store = RedisConfig::cluster(cluster.urls())
        .with_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let mut devices = Vec::new();
    for i in 0..12 {
        let d = totp(&user(&format!("user-{i}")));
        insert(&store, &d).await;
        devices.push(d);
    }
    let node_of = |d: &Device| {
        let key = format!("tower-otp:{{{}}}:devices", store.user_tag(&d.user).as_str());
        // Other nodes answer MOVED.
        let holds = |node: &RedisServer| node.query(&["EXISTS", &key]) == Reply::Int(1);
        cluster.nodes().iter().position(holds).unwrap()
    };
    let (on_first, elsewhere): (Vec<&Device>, Vec<&Device>) =
        devices.iter().partition(|d| node_of(d) == 0);
    assert!(!on_first.is_empty() && !elsewhere.is_empty());

    cluster.nodes()[0].pause();
    let started = Instant::now();
    let d = on_first[0];
    assert_unavailable(store.get_device(&d.user, &d.id).await, started);
    // The other nodes' users are served again at once (the client may spend one deadline
    // refreshing its view of the cluster after the timeout).
    let other = elsewhere[0];
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match store.get_device(&other.user, &other.id).await {
            Ok(found) => break assert_eq!(found.as_ref(), Some(other)),
            Err(error) => assert!(Instant::now() < deadline, "{error}"),
        }
    }
    for _ in 0..3 {
        assert_eq!(
            store
                .get_device(&other.user, &other.id)
                .await
                .unwrap()
                .as_ref(),
            Some(other)
        );
        let started = Instant::now();
        assert_unavailable(store.get_device(&d.user, &d.id).await, started);
    }
    cluster.nodes()[0].resume();
    until_back(&store).await;
    assert_eq!(
        store.get_device(&d.user, &d.id).await.unwrap().as_ref(),
        Some(d)
    );
}

// ----- key layout --------------------------------------------------------------------------

#[tokio::test]
async fn every_key_of_a_user_carries_the_users_hash_tag() {
    let server = shared_server();
    let store = store_on(server).await;
    let (alice, bob) = (user("alice"), user("bob"));
    populate(&store, &alice).await;
    populate(&store, &bob).await;

    let keys = keys_on(server, store.key_prefix());
    // devices, user, codes, challenge and the sessions hash, for each.
    assert_eq!(keys.len(), 10, "{keys:?}");
    for owner in [&alice, &bob] {
        let start = format!(
            "{}:{{{}}}:",
            store.key_prefix(),
            store.user_tag(owner).as_str()
        );
        let own = keys.iter().filter(|k| k.starts_with(&start)).count();
        assert_eq!(own, 5, "{keys:?}");
    }
    for key in &keys {
        assert_eq!(key.matches('{').count(), 1, "{key}");
        assert_eq!(key.matches('}').count(), 1, "{key}");
    }
}

#[tokio::test]
async fn keys_carry_the_keyed_tag_and_never_the_plain_digest_of_the_user() {
    let server = shared_server();
    let prefix = unique_prefix();
    let (first, second) = (
        store_in(server, &prefix, &server_key()).await,
        store_in(server, &prefix, &server_key()).await,
    );
    let alice = user("alice@example.com");
    populate(&first, &alice).await;
    assert_eq!(second.user_tag(&alice), first.user_tag(&alice));
    assert_eq!(second.list_devices(&alice).await.unwrap().len(), 3);

    let keys = keys_on(server, &prefix);
    let keyed = format!("{{{}}}", first.user_tag(&alice).as_str());
    let plain = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(alice.as_str())[..16]);
    assert_eq!(keys.len(), 5, "{keys:?}");
    // Beside them, the check value of the tag key, which names no user and reveals no key.
    let check = server.query(&["GET", &format!("{prefix}:tag-key-check")]);
    assert_eq!(check.text().len(), 32, "{check:?}");
    assert_ne!(check.text(), plain);
    assert!(keys.iter().all(|k| k.contains(&keyed)), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(&plain)), "{keys:?}");

    // Another server key tags the user otherwise, so its instances would find none of these
    // records: they refuse to work on this data at all.
    let other = store_in(server, &prefix, &ServerKey::new(&[4; 32]).unwrap()).await;
    assert_ne!(other.user_tag(&alice), first.user_tag(&alice));
    let refused = other.list_devices(&alice).await.unwrap_err();
    assert_eq!(refused.kind(), "store_invalid_request");
    assert_eq!(first.list_devices(&alice).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_keys_share_one_cluster_slot() {
    let store = store_on_cluster().await;
    let owners: Vec<UserId> = (0..8).map(|i| user(&format!("user-{i}"))).collect();
    for owner in &owners {
        populate(&store, owner).await;
    }
    let nodes = shared_cluster().nodes();
    let mut nodes_used = std::collections::HashSet::new();
    for owner in &owners {
        let start = format!(
            "{}:{{{}}}:",
            store.key_prefix(),
            store.user_tag(owner).as_str()
        );
        let mut slots = std::collections::HashSet::new();
        let mut found = 0;
        for (index, node) in nodes.iter().enumerate() {
            for key in keys_on(node, store.key_prefix()) {
                if key.starts_with(&start) {
                    found += 1;
                    nodes_used.insert(index);
                    slots.insert(node.query(&["CLUSTER", "KEYSLOT", &key]).int());
                }
            }
        }
        assert_eq!(found, 5, "{owner:?}");
        assert_eq!(slots.len(), 1, "{owner:?}: {slots:?}");
    }
    assert!(nodes_used.len() > 1, "eight users all on one node");
}

#[tokio::test]
async fn keys_expire_where_they_should() {
    let server = shared_server();
    let store = store_on(server).await;
    let alice = user("alice");
    let made = populate(&store, &alice).await;
    let keys = keys_on(server, store.key_prefix());
    let key = |name: &str| -> &String {
        keys.iter()
            .find(|k| k.ends_with(name))
            .unwrap_or_else(|| panic!("no key ending {name}: {keys:?}"))
    };
    let ttl = |name: &str| server.query(&["PTTL", key(name)]).int();
    // Absolute expiry times, to compare keys read at different moments.
    let expiry = |name: &str| server.query(&["PEXPIRETIME", key(name)]).int();
    // Devices, codes, counters and the stamp stay until removed.
    assert_eq!(ttl(":devices"), -1);
    assert_eq!(ttl(":user"), -1);
    assert_eq!(ttl(&format!(":codes:{}", made.backup.id)), -1);
    // The challenge goes at its expiry, 300 s after it was made.
    let challenge = ttl(&format!(":challenge:{}", made.oob.id));
    assert!((298_000..=300_000).contains(&challenge), "{challenge}");
    // The sessions hash lives as long as its longest idle deadline.
    assert!((3_598_000..=3_600_000).contains(&ttl(":s")));
    // Loading changes nothing; a touch with a longer idle time stretches the hash, a
    // shorter one leaves it (the other session still needs it).
    let before = expiry(":s");
    assert!(
        store
            .load_session(&made.sessions[0])
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(expiry(":s"), before);
    let idle = Duration::from_secs(2 * 3600);
    assert!(store.touch_session(&made.sessions[0], idle).await.unwrap());
    assert!((7_198_000..=7_200_000).contains(&ttl(":s")));
    let short = Duration::from_secs(60);
    assert!(store.touch_session(&made.sessions[0], short).await.unwrap());
    assert!(ttl(":s") > 7_000_000);
    let left = store
        .load_session(&made.sessions[0])
        .await
        .unwrap()
        .unwrap();
    assert!(left.idle_left <= short);

    // A used-up code set and the last device leave nothing behind but the user hash.
    for n in 0..10 {
        let proof = SuccessProof::BackupCode(hash(n));
        let now = Timestamp::from_secs(2);
        assert!(
            store
                .commit_success(&alice, &made.backup.id, &proof, &[], now)
                .await
                .unwrap()
        );
    }
    store.delete_all_devices(&alice).await.unwrap();
    store
        .delete_user_sessions(&store.user_tag(&alice))
        .await
        .unwrap();
    let left = keys_on(server, store.key_prefix());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(":user"), "the stamp stays: {left:?}");
}

#[tokio::test]
async fn the_sessions_hash_is_pruned_and_expires() {
    let server = shared_server();
    let store = store_on(server).await;
    let alice = user("alice");
    let tag = store.user_tag(&alice);
    let index = format!("{}:{{{}}}:s", store.key_prefix(), tag.as_str());
    let short = Duration::from_millis(100);
    for i in 0..20 {
        let key = SessionKey::new(tag.clone(), format!("short-{i}").as_bytes());
        store
            .save_session(&key, &session(&alice), short)
            .await
            .unwrap();
    }
    // Twenty sessions and the configured flag.
    assert_eq!(server.query(&["HLEN", &index]).int(), 21);
    // Once they are past their idle deadline, the next save drops them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let long = SessionKey::new(tag.clone(), b"long");
    store
        .save_session(&long, &session(&alice), HOUR)
        .await
        .unwrap();
    assert_eq!(server.query(&["HLEN", &index]).int(), 2);
    assert_eq!(store.delete_user_sessions(&tag).await.unwrap(), 1);
    assert_eq!(server.query(&["EXISTS", &index]).int(), 0);

    // A hash whose sessions all expired expires with them.
    let key = SessionKey::new(tag.clone(), b"brief");
    store
        .save_session(&key, &session(&alice), short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.query(&["EXISTS", &index]).int(), 0);
}

// ----- scripts -----------------------------------------------------------------------------

/// Flushes the script caches of `servers`, then checks the store still works.
async fn check_script_reload(store: &RedisStore, servers: &[RedisServer]) {
    let alice = user("alice");
    let d = totp(&alice);
    insert(store, &d).await;
    for server in servers {
        assert_eq!(server.query(&["SCRIPT", "FLUSH"]).text(), "OK");
    }
    assert_eq!(
        store.get_device(&alice, &d.id).await.unwrap(),
        Some(d.clone())
    );
    let proof = SuccessProof::Counter {
        next_counter: 5,
        drift: 0,
    };
    let now = Timestamp::from_secs(3);
    assert!(
        store
            .commit_success(&alice, &d.id, &proof, &[], now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .commit_success(&alice, &d.id, &proof, &[], now)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn scripts_are_loaded_again_after_script_flush() {
    let server = RedisServer::start();
    let store = store_on(&server).await;
    check_script_reload(&store, std::slice::from_ref(&server)).await;
    // Exactly one extra load: NOSCRIPT, SCRIPT LOAD, EVALSHA.
    let mut monitor = server.monitor();
    server.query(&["SCRIPT", "FLUSH"]);
    monitor.client_commands();
    store.list_devices(&user("alice")).await.unwrap();
    assert_eq!(monitor.client_commands(), ["EVALSHA", "SCRIPT", "EVALSHA"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scripts_are_loaded_again_after_script_flush() {
    let store = store_on_cluster().await;
    check_script_reload(&store, shared_cluster().nodes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_one_round_trip() {
    let server = RedisServer::start();
    let store = store_on(&server).await;
    let alice = user("alice");
    let tag = store.user_tag(&alice);
    let (d, oob) = (totp(&alice), out_of_band(&alice));
    let key = SessionKey::new(tag.clone(), b"one");
    let next = SessionKey::new(tag.clone(), b"two");
    let policy = ThrottlePolicy::default();
    let now = SystemClock.now();
    let challenge = Challenge {
        hash: hash(1),
        expires_at: now.saturating_add(Duration::from_secs(60)),
        resend_after: now,
        binding: None,
        max_tries: 5,
        tries: 0,
    };
    let proof = SuccessProof::BackupCode(hash(1));
    let confirmation_key = ConfirmationKey::new(tag.clone(), &ConfirmationId::generate());
    let confirmation = ConfirmationRecord {
        user: alice.clone(),
        method: "device".into(),
        status: ConfirmationStatus::InProcess,
        state: serde_json::Value::Null,
        attempts: 0,
        created_at: now,
        expires_at: now.saturating_add(Duration::from_secs(60)),
        retain_until: now.saturating_add(Duration::from_secs(120)),
    };
    // A user's counters share the user's slot: one script for all of them.
    let send_limits: Vec<RateBucket> = ["sends", "pending-sends"]
        .into_iter()
        .map(|name| RateBucket {
            key: RateKey::User {
                tag: tag.clone(),
                name: name.into(),
            },
            limit: RateLimit::new(1_000, HOUR),
        })
        .collect();
    let ids = [d.id.clone(), oob.id.clone()];
    let limits = DeviceLimits::default();

    let mut monitor = server.monitor();
    let mut costs = Vec::new();
    // Twice: the first round loads the scripts.
    for round in 0..2 {
        macro_rules! measure {
            ($name:literal, $operation:expr) => {{
                monitor.client_commands();
                let _ = $operation.await;
                let commands = monitor.client_commands();
                if round == 1 {
                    assert_eq!(commands.len(), 1, "{}: {commands:?}", $name);
                    costs.push(($name, commands[0].clone()));
                }
            }};
        }
        measure!("insert_device", store.insert_device(&d, &limits));
        measure!("insert_device", store.insert_device(&oob, &limits));
        measure!("update_device", store.update_device(&d));
        measure!("confirm_device", store.confirm_device(&alice, &d.id, false));
        measure!("get_device", store.get_device(&alice, &d.id));
        measure!("list_devices", store.list_devices(&alice));
        measure!(
            "replace_backup_codes",
            store.replace_backup_codes(&alice, &oob.id, &[hash(1), hash(2)])
        );
        measure!(
            "count_backup_codes",
            store.count_backup_codes(&alice, &oob.id)
        );
        measure!(
            "put_challenge",
            store.put_challenge(&alice, &oob.id, &challenge, now)
        );
        measure!(
            "begin_attempt",
            store.begin_attempt(&alice, &ids, AttemptPurpose::Verify, &policy, now)
        );
        measure!(
            "commit_success",
            store.commit_success(&alice, &oob.id, &proof, &ids, now)
        );
        measure!(
            "insert_confirmation",
            store.insert_confirmation(&confirmation_key, &confirmation, 10)
        );
        measure!(
            "start_confirmation",
            store.start_confirmation(&confirmation_key, &confirmation)
        );
        measure!(
            "count_rate_limited",
            store.count_rate_limited(&send_limits, now)
        );
        measure!(
            "uncount_rate_limited",
            store.uncount_rate_limited(&send_limits, now)
        );
        measure!("reset_user_failures", store.reset_user_failures(&alice));
        measure!("user_failures", store.user_failures(&alice));
        measure!("user_stamp", store.user_stamp(&alice));
        measure!("bump_user_stamp", store.bump_user_stamp(&alice));
        measure!(
            "save_session",
            store.save_session(&key, &session(&alice), HOUR)
        );
        measure!("load_session", store.load_session(&key));
        measure!("touch_session", store.touch_session(&key, HOUR));
        measure!(
            "rotate_session",
            store.rotate_session(&key, &next, &session(&alice), HOUR)
        );
        measure!("delete_session", store.delete_session(&next));
        measure!("delete_user_sessions", store.delete_user_sessions(&tag));
        measure!("delete_device", store.delete_device(&alice, &d.id));
        measure!("delete_all_devices", store.delete_all_devices(&alice));
        measure!("ping", store.ping());
    }
    for (operation, command) in costs {
        println!("{operation:<22} 1 round trip ({command})");
    }
}

// ----- damaged records ---------------------------------------------------------------------

#[tokio::test]
async fn damaged_records_fail_as_corrupt_and_change_nothing() {
    let server = shared_server();
    let store = store_on(server).await;
    let alice = user("alice");
    let d = totp(&alice);
    insert(&store, &d).await;
    let tag = store.user_tag(&alice);
    let devices = format!("{}:{{{}}}:devices", store.key_prefix(), tag.as_str());
    let user_key = format!("{}:{{{}}}:user", store.key_prefix(), tag.as_str());
    let state_field = format!("{}:s", d.id);
    let state = server
        .query(&["HGET", &devices, &state_field])
        .text()
        .to_owned();
    assert_eq!(state, "1,0,0,0,,,1,");
    server.query(&["HSET", &devices, &state_field, "1,0,0,secret-garbage,,,1,"]);

    let check = |result: Result<_, StoreError>| {
        let error = result.expect_err("damaged record accepted");
        assert_eq!(error.kind(), "store_corrupt", "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
    };
    check(store.get_device(&alice, &d.id).await.map(drop));
    check(store.list_devices(&alice).await.map(drop));
    let policy = ThrottlePolicy::default();
    let now = Timestamp::from_secs(10);
    check(
        store
            .begin_attempt(
                &alice,
                std::slice::from_ref(&d.id),
                AttemptPurpose::Verify,
                &policy,
                now,
            )
            .await
            .map(drop),
    );
    let proof = SuccessProof::Counter {
        next_counter: 9,
        drift: 0,
    };
    check(
        store
            .commit_success(&alice, &d.id, &proof, &[], now)
            .await
            .map(drop),
    );
    // Nothing was written by the failed scripts.
    assert_eq!(server.query(&["EXISTS", &user_key]).int(), 0);
    let stored = server.query(&["HGET", &devices, &state_field]);
    assert_eq!(stored.text(), "1,0,0,secret-garbage,,,1,");

    let record_field = d.id.to_string();
    server.query(&["HSET", &devices, &record_field, "{\"secret\": "]);
    server.query(&["HSET", &devices, &state_field, &state]);
    check(store.get_device(&alice, &d.id).await.map(drop));

    let key = SessionKey::new(tag, b"s");
    store
        .save_session(&key, &session(&alice), HOUR)
        .await
        .unwrap();
    let sessions = sessions_key_name(&store, &key);
    server.query(&["HSET", &sessions, key.digest(), "secret-not-a-session"]);
    check(store.load_session(&key).await.map(drop));
}

// ----- revocation ----------------------------------------------------------------------------

/// A session of `owner` verified by `device`, with times that a double cannot hold (2^53 + 1
/// ms), so that a record re-encoded by cjson would come back changed.
fn verified_session(owner: &UserId, device: &DeviceId) -> SessionRecord {
    SessionRecord {
        created_at: Timestamp::from_millis((1 << 53) + 1),
        expires_at: Timestamp::from_millis(u64::MAX - 1),
        verified: Some(VerifiedBy {
            device_id: device.clone(),
            device_kind: DeviceKind::Totp,
            at: Timestamp::from_millis((1 << 53) + 3),
            remembered: false,
        }),
        ..session(owner)
    }
}

/// The sessions hash of the user of `key`.
fn sessions_key_name(store: &RedisStore, key: &SessionKey) -> String {
    format!("{}:{{{}}}:s", store.key_prefix(), key.tag().as_str())
}

#[tokio::test]
async fn revoking_a_verification_edits_only_those_fields_and_keeps_the_ttl() {
    let server = shared_server();
    let store = store_on(server).await;
    let alice = user("alice");
    let d = totp(&alice);
    insert(&store, &d).await;
    let key = SessionKey::new(store.user_tag(&alice), b"s");
    let record = verified_session(&alice, &d.id);
    store.save_session(&key, &record, HOUR).await.unwrap();
    let name = sessions_key_name(&store, &key);
    let before = server
        .query(&["HGET", &name, key.digest()])
        .text()
        .to_owned();

    assert!(store.delete_device(&alice, &d.id).await.unwrap());
    let after = server
        .query(&["HGET", &name, key.digest()])
        .text()
        .to_owned();
    let verified = format!("|{}|t|{}|0|", d.id, (1u64 << 53) + 3);
    assert!(before.contains(&verified), "{before}");
    assert_eq!(after, before.replace(&verified, "|||||"));
    let ttl = server.query(&["PTTL", &name]).int();
    assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");
    let loaded = store.load_session(&key).await.unwrap().map(|l| l.record);
    assert_eq!(
        loaded,
        Some(SessionRecord {
            verified: None,
            ..record
        })
    );
}

#[tokio::test]
async fn revocation_fails_closed_on_damaged_records_and_changes_nothing() {
    let server = shared_server();
    let store = store_on(server).await;
    let alice = user("alice");
    let d = totp(&alice);
    insert(&store, &d).await;
    let tag = store.user_tag(&alice);
    let good = SessionKey::new(tag.clone(), b"good");
    let record = verified_session(&alice, &d.id);
    store.save_session(&good, &record, HOUR).await.unwrap();
    let now = SystemClock.now();
    let browser = tower_otp::remember::RememberedBrowser {
        id: tower_otp::remember::BrowserId::generate(),
        user: alice.clone(),
        device_id: d.id.clone(),
        created_at: now,
        last_used_at: None,
        expires_at: now.saturating_add(HOUR),
        user_agent: None,
    };
    store.put_remembered(&browser).await.unwrap();
    let check = |result: Result<_, StoreError>| {
        let error = result.expect_err("damaged record accepted");
        assert_eq!(error.kind(), "store_corrupt", "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
    };

    // A session that is not one, then one whose verification is damaged.
    let bad = SessionKey::new(tag.clone(), b"bad");
    store
        .save_session(&bad, &session(&alice), HOUR)
        .await
        .unwrap();
    let bad_name = sessions_key_name(&store, &bad);
    for damaged in [
        "secret-not-a-session",
        "9999999999999|1|2|secret|t|3|0||alice",
    ] {
        server.query(&["HSET", &bad_name, bad.digest(), damaged]);
        check(store.delete_device(&alice, &d.id).await.map(drop));
        check(store.delete_all_devices(&alice).await.map(drop));
        assert_eq!(
            store.get_device(&alice, &d.id).await.unwrap(),
            Some(d.clone())
        );
        assert_eq!(store.list_remembered(&alice).await.unwrap().len(), 1);
        let loaded = store.load_session(&good).await.unwrap().map(|l| l.record);
        assert_eq!(loaded.as_ref(), Some(&record));
    }
    server.query(&["HDEL", &bad_name, bad.digest()]);

    // A remembered browser whose record is damaged.
    let browsers = format!("{}:{{{}}}:browsers", store.key_prefix(), tag.as_str());
    let expiry = now.saturating_add(HOUR).as_millis().to_string();
    server.query(&["HSET", &browsers, "other", &format!("{expiry}||secret")]);
    check(store.delete_device(&alice, &d.id).await.map(drop));
    check(
        store
            .replace_backup_codes(&alice, &d.id, &[hash(1)])
            .await
            .map(drop),
    );
    assert_eq!(
        store.get_device(&alice, &d.id).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(store.count_backup_codes(&alice, &d.id).await.unwrap(), 0);
    let loaded = store.load_session(&good).await.unwrap().map(|l| l.record);
    assert_eq!(loaded.as_ref(), Some(&record));
}

#[tokio::test]
async fn unconfirmed_devices_keep_their_deadline_beside_the_record() {
    let server = shared_server();
    let store = store_on(server).await;
    let alice = user("alice");
    let deadline = SystemClock.now().saturating_add(HOUR);
    let d = Device {
        confirmed: false,
        pending_until: Some(deadline),
        ..totp(&alice)
    };
    insert(&store, &d).await;
    let tag = store.user_tag(&alice);
    let devices = format!("{}:{{{}}}:devices", store.key_prefix(), tag.as_str());
    let state = server
        .query(&["HGET", &devices, &format!("{}:s", d.id)])
        .text()
        .to_owned();
    assert_eq!(state, format!("1,0,0,0,,,0,{}", deadline.as_millis()));
    let record = server
        .query(&["HGET", &devices, d.id.as_str()])
        .text()
        .to_owned();
    assert!(
        !record.contains("confirmed") && !record.contains("pending_until"),
        "{record}"
    );
    // The devices hash itself has no time to live: expiry is per device.
    assert_eq!(server.query(&["PTTL", &devices]).int(), -1);
    assert_eq!(
        store.confirm_device(&alice, &d.id, true).await.unwrap(),
        tower_otp::store::ConfirmOutcome::Confirmed { first: true }
    );
    let state = server.query(&["HGET", &devices, &format!("{}:s", d.id)]);
    assert_eq!(state.text(), "1,0,0,0,,,1,");
}

// ----- the cluster helper ------------------------------------------------------------------

#[test]
fn a_private_cluster_has_three_masters_on_loopback() {
    let cluster = shared_cluster();
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    for node in nodes {
        let info = node.command("CLUSTER INFO");
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_size:3"), "{info}");
        assert_eq!(
            node.query(&["CONFIG", "GET", "bind"]).strings()[1],
            "127.0.0.1"
        );
        assert_eq!(node.query(&["CONFIG", "GET", "save"]).strings()[1], "");
        assert_eq!(
            node.query(&["CONFIG", "GET", "appendonly"]).strings()[1],
            "no"
        );
        // The bus port is the node's port + 10000, below 65536.
        let myself = node.query(&["CLUSTER", "NODES"]);
        let line = myself
            .text()
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap()
            .to_owned();
        let bus = node.port() as u32 + 10_000;
        assert!(
            line.contains(&format!("127.0.0.1:{}@{bus}", node.port())),
            "{line}"
        );
        assert!(line.contains("master"), "{line}");
    }
    let dirs: std::collections::HashSet<_> = nodes
        .iter()
        .map(|n| n.query(&["CONFIG", "GET", "dir"]).strings()[1].clone())
        .collect();
    assert_eq!(dirs.len(), 3, "each node has its own directory");
}

// ----- memory ------------------------------------------------------------------------------

/// `MEMORY USAGE key SAMPLES 0` (exact) of each key, by the key's name after the tag.
fn memory_by_key(server: &RedisServer, prefix: &str, tag: &UserTag) -> Vec<(String, i64)> {
    let start = format!("{prefix}:{{{}}}:", tag.as_str());
    let mut keys = keys_on(server, prefix);
    keys.retain(|k| k.starts_with(&start));
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let bytes = server
                .query(&["MEMORY", "USAGE", &key, "SAMPLES", "0"])
                .int();
            (key[start.len()..].to_owned(), bytes)
        })
        .collect()
}

/// Run with `cargo test --test redis_store -- --ignored --nocapture memory`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn memory_per_enrolled_user_and_session() {
    let server = RedisServer::start();
    // The default key prefix, as in production.
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let prefix = store.key_prefix().to_owned();
    let sealer = SecretSealer::new(vec![SealingKey::new("k1", &[7; 32]).unwrap()]).unwrap();
    let two_factor = TwoFactor::new(store.clone(), ServerKey::generate()).with_sealer(sealer);

    // One confirmed TOTP device (sealed secret) and ten backup codes, as an app enrols a user.
    let alice = user("alice@example.com");
    let enrolment = two_factor
        .enroll_totp(
            &alice,
            "Phone",
            "alice@example.com",
            TotpSettings::default(),
        )
        .await
        .unwrap();
    let code = enrolment.current_code(two_factor.now());
    two_factor
        .confirm_device(&alice, &enrolment.device.id, &code)
        .await
        .unwrap();
    let admin = tower_otp::device::Caller::administrator(alice.clone());
    two_factor.generate_backup_codes(&admin).await.unwrap();
    let tag = store.user_tag(&alice);
    let user_keys = memory_by_key(&server, &prefix, &tag);
    let per_user: i64 = user_keys.iter().map(|(_, b)| b).sum();

    // One verified session, then a second one of the same user.
    let mut record = session(&alice);
    record.verified = Some(VerifiedBy {
        device_id: enrolment.device.id.clone(),
        device_kind: DeviceKind::Totp,
        at: two_factor.now(),
        remembered: false,
    });
    let first = SessionKey::new(tag.clone(), b"first session id");
    store.save_session(&first, &record, HOUR).await.unwrap();
    let with_one = memory_by_key(&server, &prefix, &tag);
    let second = SessionKey::new(tag.clone(), b"second session id");
    store.save_session(&second, &record, HOUR).await.unwrap();
    let with_two = memory_by_key(&server, &prefix, &tag);
    let total = |keys: &[(String, i64)]| keys.iter().map(|(_, b)| b).sum::<i64>();

    println!("command: MEMORY USAGE <key> SAMPLES 0 (redis-server 7.0, 64-bit, jemalloc)");
    println!("enrolled user (1 confirmed TOTP device + 10 backup codes):");
    for (key, bytes) in &user_keys {
        println!("  {prefix}:{{T}}:{key:<40} {bytes:>6} B");
    }
    println!("  total {per_user} B");
    println!("first session (the sessions hash):");
    for (key, bytes) in with_one.iter().filter(|(k, _)| k == "s") {
        println!("  {prefix}:{{T}}:{key:<40} {bytes:>6} B");
    }
    println!("  total {} B", total(&with_one) - per_user);
    println!(
        "each further session: {} B",
        total(&with_two) - total(&with_one)
    );

    // The user hash exists only while there are failures, a lock or a stamp.
    let wrong = two_factor
        .verify(&alice, &enrolment.device.id, "000000")
        .await;
    assert!(wrong.is_err());
    store.bump_user_stamp(&alice).await.unwrap();
    let with_user = memory_by_key(&server, &prefix, &tag);
    for (key, bytes) in with_user.iter().filter(|(k, _)| k == "user") {
        println!("after a failure and a stamp: {prefix}:{{T}}:{key} {bytes} B");
    }
}
