//! Plain reads of concurrent requests sent to Redis together.
//!
//! Every guarded request reads its session with one `HMGET`. Sent one by one, each read costs
//! a write on the connection, a turn of Redis's event loop with a read and a write of its
//! own, and a read of the reply: on a busy instance that, not the command, is most of what a
//! read costs both sides. Here the reads that requests issue in the same turn of the
//! scheduler leave together, as one pipeline: one write, one turn of Redis's loop, one reply
//! to read, whatever their number. A read issued alone waits only those few turns (a few
//! microseconds on an idle runtime) and leaves as a pipeline of one.
//!
//! Each read is still one command with its own reply, and nothing else changes: a server
//! error answers only its own read, and a batch that gets no answer within the timeout (or
//! loses its connection) fails every read in it, closed.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::ConnectionManager;
use redis::{Cmd, Pipeline, Value};
use tokio::sync::{mpsc, oneshot};

use super::connection::{not_run, within};
use crate::store::StoreError;

/// Most reads in one pipeline: enough to cover any turn of a busy scheduler, few enough that
/// one batch's reply is small.
const MAX_BATCH: usize = 128;

/// How many times a batch lets the scheduler run its other tasks before it leaves. Each turn
/// costs a read a few microseconds (little next to a round trip); on the load benchmark 3
/// turns served about 6% more guarded requests than 1, with a fifth less Redis CPU per
/// request, and 6 or 10 gained nothing more.
const TURNS_WAITED: usize = 3;

/// A read waiting to be sent.
struct Read {
    command: Cmd,
    answer: oneshot::Sender<Answer>,
}

/// What became of one read.
pub(super) enum Answer {
    /// Redis's reply, or why there is none.
    Reply(Result<Value, StoreError>),
    /// Redis refused it before running it (still loading its data, say): the caller sends it
    /// again on its own, with the retries and delays of any other command.
    SendAlone(Cmd),
}

/// The handle every clone of a store sends its reads through. The task that sends them ends
/// when the last clone is dropped.
#[derive(Clone)]
pub(super) struct ReadPipeline {
    queue: mpsc::UnboundedSender<Read>,
}

impl ReadPipeline {
    /// Starts sending reads on `connection` (on the current Tokio runtime), each batch
    /// answered within `timeout` or failed.
    pub(super) fn start(connection: ConnectionManager, timeout: Duration) -> Self {
        let (queue, reads) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(reads, connection, timeout));
        ReadPipeline { queue }
    }

    /// Sends `command`, a read, with whatever other reads are issued meanwhile.
    pub(super) async fn read(&self, command: Cmd) -> Answer {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Read { command, answer }).is_err() {
            return Answer::Reply(Err(stopped()));
        }
        answered
            .await
            .unwrap_or_else(|_| Answer::Reply(Err(stopped())))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("redis: the read pipeline stopped".into())
}

/// What the sending task waits for.
enum Event {
    /// A batch was answered (or failed).
    Answered,
    /// A read arrived; `None` once every handle is dropped.
    Read(Option<Read>),
}

/// Takes the reads as they come, lets the other requests of the scheduler's turn add theirs,
/// and sends each batch at once, answered or not the ones before it: a slow batch holds up no
/// other. (Kept in this task rather than spawned: on the load benchmark that served a few per
/// cent more requests.)
async fn send_batches(
    mut reads: mpsc::UnboundedReceiver<Read>,
    connection: ConnectionManager,
    timeout: Duration,
) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let event = poll_fn(|cx| match in_flight.poll_next_unpin(cx) {
            Poll::Ready(Some(())) => Poll::Ready(Event::Answered),
            _ => reads.poll_recv(cx).map(Event::Read),
        })
        .await;
        let first = match event {
            Event::Answered => continue,
            Event::Read(Some(first)) => first,
            Event::Read(None) => break,
        };
        let mut batch = vec![first];
        // Back of the queue, a few times: the requests ready in this turn run first and
        // issue their reads before the batch closes.
        for _ in 0..TURNS_WAITED {
            // Batches answered meanwhile hand out their replies now, not after this one
            // leaves.
            let mut turn = pin!(tokio::task::yield_now());
            poll_fn(|cx| {
                while let Poll::Ready(Some(())) = in_flight.poll_next_unpin(cx) {}
                turn.as_mut().poll(cx)
            })
            .await;
            while batch.len() < MAX_BATCH {
                match reads.try_recv() {
                    Ok(read) => batch.push(read),
                    Err(_) => break,
                }
            }
        }
        in_flight.push(send(batch, connection.clone(), timeout));
    }
    while in_flight.next().await.is_some() {}
}

/// Sends one batch as a pipeline and hands each read its own reply.
async fn send(batch: Vec<Read>, mut connection: ConnectionManager, timeout: Duration) {
    let mut pipeline = Pipeline::with_capacity(batch.len());
    // Each reply on its own: one read's server error must not fail the others.
    pipeline.ignore_errors();
    let mut answers = Vec::with_capacity(batch.len());
    for Read { command, answer } in batch {
        pipeline.add_command(command);
        answers.push(answer);
    }
    let replies = within(timeout, async {
        Ok(pipeline.query_async::<Vec<Value>>(&mut connection).await?)
    })
    .await;
    match replies {
        Ok(replies) if replies.len() == answers.len() => {
            let commands = pipeline.cmd_iter();
            for ((answer, reply), command) in answers.into_iter().zip(replies).zip(commands) {
                let _ = answer.send(answer_of(reply, command));
            }
        }
        Ok(_) => {
            for answer in answers {
                let _ = answer.send(Answer::Reply(Err(StoreError::Corrupt(
                    "a pipeline's replies do not match its commands".into(),
                ))));
            }
        }
        Err(error) => {
            for answer in answers {
                let _ = answer.send(Answer::Reply(Err(error.clone())));
            }
        }
    }
}

fn answer_of(reply: Value, command: &Cmd) -> Answer {
    match reply.extract_error() {
        Ok(value) => Answer::Reply(Ok(value)),
        Err(error) if not_run(&error) => Answer::SendAlone(command.clone()),
        Err(error) => Answer::Reply(Err(error.into())),
    }
}
