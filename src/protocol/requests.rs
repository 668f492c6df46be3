//! Request correlation: ids, how many answers are expected, collecting them, timing out.
//!
//! A request is registered before it is published (an answer may come back before `PUBLISH`
//! returns), answers are matched by request id, and the waiter gets every answer that arrived
//! even when it timed out.

use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

const UID2_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The classic adapter's `uid2(6)` format: 6 chars of the URL-safe base64 alphabet.
pub fn uid2(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| UID2_ALPHABET[rng.random_range(0..64)] as char)
        .collect()
}

/// The cluster-adapter format: 16 lowercase hex chars.
pub fn random_hex_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub expected: usize,
    pub responses: Vec<Vec<u8>>,
    pub timed_out: bool,
}

struct Pending {
    expected: usize,
    responses: Vec<Vec<u8>>,
    complete: Option<oneshot::Sender<()>>,
    map: Option<AnswerMap>,
}

/// Turns an answer into what the waiter gets, when it arrives (on the thread that reads it,
/// rather than on the JS thread once they are all in).
pub type AnswerMap = fn(&[u8]) -> Vec<u8>;

#[derive(Default)]
pub struct RequestRegistry {
    pending: Mutex<HashMap<String, Pending>>,
    /// Broadcast-with-ack requests: their answers go to JS callbacks one by one.
    ack_requests: Mutex<HashSet<String>>,
}

pub struct Waiter<'a> {
    registry: &'a RequestRegistry,
    id: String,
    rx: Option<oneshot::Receiver<()>>,
}

impl RequestRegistry {
    pub fn register(&self, id: &str, expected: usize) -> Waiter<'_> {
        self.register_mapped(id, expected, None)
    }

    /// [`Self::register`], each answer kept as `map` turns it.
    pub fn register_mapped(&self, id: &str, expected: usize, map: Option<AnswerMap>) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(
            id.to_string(),
            Pending {
                expected,
                responses: Vec::new(),
                complete: Some(tx),
                map,
            },
        );
        Waiter {
            registry: self,
            id: id.to_string(),
            rx: Some(rx),
        }
    }

    /// Sets how many answers a request registered with an unknown count (`usize::MAX`)
    /// expects, once that is known: answers that came meanwhile count, extra ones are dropped
    /// (as late answers would be), and the waiter completes at once if enough arrived.
    pub fn set_expected(&self, id: &str, expected: usize) {
        let mut pending = self.pending.lock().unwrap();
        if let Some(entry) = pending.get_mut(id) {
            entry.expected = expected;
            entry.responses.truncate(expected);
            if entry.responses.len() == expected {
                if let Some(tx) = entry.complete.take() {
                    let _ = tx.send(());
                }
            }
        }
    }

    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().unwrap().contains_key(id)
    }

    /// Adds an answer. False when nobody waits for this id (late, foreign or duplicate).
    pub fn add_response(&self, id: &str, payload: &[u8]) -> bool {
        let mut pending = self.pending.lock().unwrap();
        let Some(entry) = pending.get_mut(id) else {
            return false;
        };
        if entry.responses.len() >= entry.expected {
            return false;
        }
        entry.responses.push(match entry.map {
            Some(map) => map(payload),
            None => payload.to_vec(),
        });
        if entry.responses.len() == entry.expected {
            if let Some(tx) = entry.complete.take() {
                let _ = tx.send(());
            }
        }
        true
    }

    /// Removes a request that will never be awaited (its publish failed).
    pub fn cancel(&self, id: &str) {
        self.pending.lock().unwrap().remove(id);
    }

    pub fn register_ack(&self, id: &str) {
        self.ack_requests.lock().unwrap().insert(id.to_string());
    }

    pub fn is_ack_request(&self, id: &str) -> bool {
        self.ack_requests.lock().unwrap().contains(id)
    }

    pub fn remove_ack(&self, id: &str) {
        self.ack_requests.lock().unwrap().remove(id);
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

impl Waiter<'_> {
    /// Waits for every expected answer or the timeout, whichever comes first.
    pub async fn wait(mut self, timeout: Duration) -> Outcome {
        let rx = self.rx.take().expect("waited once");
        let timed_out = tokio::time::timeout(timeout, rx).await.is_err();
        let entry = self.registry.pending.lock().unwrap().remove(&self.id);
        let (expected, responses) = entry.map(|p| (p.expected, p.responses)).unwrap_or_default();
        // An answer may land between the timer firing and the removal above.
        let timed_out = timed_out && responses.len() < expected;
        Outcome {
            expected,
            responses,
            timed_out,
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        // A dropped (cancelled) wait must not leak its entry.
        self.registry.pending.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_official_formats() {
        let id = uid2(6);
        assert_eq!(id.len(), 6);
        assert!(id.bytes().all(|b| UID2_ALPHABET.contains(&b)));
        let hex = random_hex_id();
        assert_eq!(hex.len(), 16);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[tokio::test]
    async fn answers_are_mapped_as_they_arrive() {
        let registry = RequestRegistry::default();
        let waiter = registry.register_mapped("m", 2, Some(|a: &[u8]| a.to_ascii_uppercase()));
        assert!(registry.add_response("m", b"ab"));
        assert!(registry.add_response("m", b"c"));
        let outcome = waiter.wait(Duration::from_secs(5)).await;
        assert_eq!(outcome.responses, vec![b"AB".to_vec(), b"C".to_vec()]);
    }

    #[tokio::test]
    async fn expected_count_can_come_after_the_answers() {
        let registry = RequestRegistry::default();
        let waiter = registry.register("r2", usize::MAX);
        assert!(registry.add_response("r2", b"a"));
        assert!(registry.add_response("r2", b"b"));
        assert!(registry.add_response("r2", b"c"));
        registry.set_expected("r2", 2);
        let outcome = waiter.wait(Duration::from_secs(5)).await;
        assert_eq!(outcome.expected, 2);
        assert_eq!(outcome.responses, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(!outcome.timed_out);
        let waiter = registry.register("r3", usize::MAX);
        registry.set_expected("r3", 0);
        let outcome = waiter.wait(Duration::from_secs(5)).await;
        assert!(outcome.responses.is_empty() && !outcome.timed_out);
    }

    #[tokio::test]
    async fn completes_when_all_expected_answers_arrive() {
        let registry = RequestRegistry::default();
        let waiter = registry.register("r1", 2);
        assert!(registry.add_response("r1", b"a"));
        assert!(!registry.add_response("other", b"x"));
        assert!(registry.add_response("r1", b"b"));
        assert!(!registry.add_response("r1", b"c"), "beyond expected");
        let outcome = waiter.wait(Duration::from_secs(5)).await;
        assert_eq!(
            outcome,
            Outcome {
                expected: 2,
                responses: vec![b"a".to_vec(), b"b".to_vec()],
                timed_out: false
            }
        );
        assert_eq!(registry.pending_count(), 0);
    }

    #[tokio::test]
    async fn times_out_with_partial_answers() {
        let registry = RequestRegistry::default();
        let waiter = registry.register("r2", 3);
        registry.add_response("r2", b"only");
        let outcome = waiter.wait(Duration::from_millis(20)).await;
        assert!(outcome.timed_out);
        assert_eq!(outcome.responses.len(), 1);
        assert!(!registry.is_pending("r2"));
    }
}
