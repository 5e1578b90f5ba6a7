//! The private redis-server helper itself: it starts, answers on loopback, stores nothing on
//! disk, and is gone once dropped.

mod common;

use common::redis_server::{RedisServer, raw_command};

#[test]
fn a_private_server_starts_answers_and_stops() {
    let server = RedisServer::start();
    let port = server.port();
    assert!(server.url().starts_with("redis://127.0.0.1:"));
    assert!(server.command("PING").starts_with("+PONG"));
    let save = server.command("CONFIG GET save");
    assert!(save.contains("save\r\n$0\r\n\r\n"), "{save:?}");
    let aof = server.command("CONFIG GET appendonly");
    assert!(aof.contains("no"), "{aof:?}");
    let bind = server.command("CONFIG GET bind");
    assert!(
        bind.contains("127.0.0.1") && !bind.contains("0.0.0.0"),
        "{bind:?}"
    );
    drop(server);
    assert!(
        raw_command(port, "PING").is_err(),
        "server still answers after drop"
    );
}
