//! The bounded queue between the live loop and a receiver's delivery thread. While a broker or
//! web hook is away, events wait here; beyond the bound the oldest is dropped and counted, so a
//! long outage costs memory that is known in advance and the newest state still gets through.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::FieldEvent;

pub struct Outbox {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<FieldEvent>,
    dropped: u64,
    closed: bool,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self { state: Mutex::new(State::default()), ready: Condvar::new(), capacity: capacity.max(1) }
    }

    /// Queues an event, dropping the oldest when full. Never blocks for long: the loop calls it.
    pub fn push(&self, event: FieldEvent) {
        let mut state = self.state.lock().expect("outbox");
        if state.queue.len() >= self.capacity {
            state.queue.pop_front();
            state.dropped += 1;
            if state.dropped == 1 || state.dropped.is_power_of_two() {
                tracing::warn!("event outbox full ({} events): {} dropped so far, oldest first", self.capacity, state.dropped);
            }
        }
        state.queue.push_back(event);
        drop(state);
        self.ready.notify_all();
    }

    /// Puts back an event that could not be delivered, at the front, unless newer ones filled
    /// the outbox meanwhile (then it is the oldest, and dropped).
    pub fn unpop(&self, event: FieldEvent) {
        let mut state = self.state.lock().expect("outbox");
        if state.queue.len() >= self.capacity {
            state.dropped += 1;
        } else {
            state.queue.push_front(event);
        }
    }

    /// The oldest event, waiting up to `wait` for one. `None` on timeout, or once closed and empty.
    pub fn pop(&self, wait: Duration) -> Option<FieldEvent> {
        let mut state = self.state.lock().expect("outbox");
        if state.queue.is_empty() && !state.closed {
            state = self.ready.wait_timeout(state, wait).expect("outbox").0;
        }
        state.queue.pop_front()
    }

    /// No more events will come; the delivery thread ends once the queue is empty.
    pub fn close(&self) {
        self.state.lock().expect("outbox").closed = true;
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().expect("outbox").closed
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("outbox").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dropped(&self) -> u64 {
        self.state.lock().expect("outbox").dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn event(n: u64) -> FieldEvent {
        let mut e = FieldEvent::now(EventKind::LabelChanged, "");
        e.frame = Some(n);
        e
    }

    #[test]
    fn beyond_the_bound_the_oldest_go_and_are_counted() {
        let outbox = Outbox::new(3);
        for n in 0..5 {
            outbox.push(event(n));
        }
        assert_eq!((outbox.len(), outbox.dropped()), (3, 2));
        let first = outbox.pop(Duration::ZERO).unwrap();
        assert_eq!(first.frame, Some(2));
        outbox.unpop(first);
        assert_eq!(outbox.len(), 3);
        // Full again: the oldest (the put-back one) goes for the newest.
        outbox.push(event(5));
        // A put-back event when newer ones filled the outbox is the oldest: dropped.
        outbox.unpop(event(99));
        assert_eq!(outbox.dropped(), 4);
        let frames: Vec<u64> = std::iter::from_fn(|| outbox.pop(Duration::ZERO)).map(|e| e.frame.unwrap()).collect();
        assert_eq!(frames, [3, 4, 5]);
        outbox.close();
        assert!(outbox.pop(Duration::from_secs(5)).is_none(), "closed and empty: no wait");
    }
}
