//! `--mqtt mqtt://[user[:password]@]host[:port]`: events to a broker (rumqttc, plain TCP).
//!
//! Topics, under `<root>/<id>` (`--mqtt-topic`, default `flowercam`; `--mqtt-id`, default the
//! host name):
//! - `availability`: `online` (retained) once connected, `offline` as the last will and on a
//!   clean stop;
//! - `events`: each event's JSON, QoS 1;
//! - `state`: the latest event's JSON, retained, QoS 1: what a dashboard shows on connect;
//! - `homeassistant/sensor/flowercam_<id>/answer/config`: Home Assistant MQTT discovery
//!   (retained), a sensor whose value is the box's answer.
//!
//! Delivery is at least once and survives a broker restart: an event leaves the outbox for the
//! client only while connected, and stays in an in-flight list until its PUBACK. When the
//! connection drops, every unacknowledged event goes back to the front of the outbox, in order,
//! and is sent again on the next connection (clean sessions, so rumqttc replays nothing itself
//! and nothing goes out twice from the same send).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, Outgoing, Packet, QoS};

use super::outbox::Outbox;
use super::{EventSink, FieldEvent};
use crate::backoff::Backoff;
use crate::redact::redact;
use shared::usage::UsageError;

const DEFAULT_PORT: u16 = 1883;
/// Requests rumqttc may hold; the outbox is the real queue.
const CLIENT_CAPACITY: usize = 64;

/// Where a broker is, as `--mqtt` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl BrokerUrl {
    /// `mqtt://[user[:password]@]host[:port]`. Bad usage (exit 2) when malformed.
    pub fn parse(url: &str) -> Result<Self, UsageError> {
        let bad = |why: &str| UsageError(format!("--mqtt {}: {why} (expected mqtt://[user[:password]@]host[:port])", redact(url)));
        let rest = match url.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => rest,
            Some(("mqtts" | "ssl", _)) => return Err(bad("TLS is not built in; use a broker on the LAN or a local bridge")),
            _ => return Err(bad("not an mqtt:// URL")),
        };
        if crate::redact::has_unencoded_userinfo(url) {
            return Err(bad(crate::redact::UNENCODED_USERINFO));
        }
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(bad("a path is not used; the topics come from --mqtt-topic and --mqtt-id"));
        }
        let decoded = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| bad("the user or password is not UTF-8 once its %XX are decoded"))
        };
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((decoded(user)?, decoded(password)?)), host_port)
            }
            None => (None, authority),
        };
        if host_port.contains(['?', '#']) {
            return Err(bad("a query or fragment is not used"));
        }
        // `host`, `host:port`, `[v6]` or `[v6]:port`.
        let (host, port) = match host_port.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(|| bad("an IPv6 address's ']' is missing"))?;
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').ok_or_else(|| bad(&format!("'{after}' after the address")))?)),
                }
            }
            None => match host_port.split_once(':') {
                Some((_, port)) if port.contains(':') => return Err(bad("an IPv6 address goes in brackets: mqtt://[::1]")),
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        let port = match port {
            None => DEFAULT_PORT,
            // Digits only: u16's parser also takes "+1".
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad(&format!("bad port '{port}'")))?,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        // A name or an IPv4 address (letters, digits, '.', '-', '_'), or an IPv6 one in brackets.
        let well_formed = match host_port.starts_with('[') {
            true => host.parse::<std::net::Ipv6Addr>().is_ok(),
            false => host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
        };
        if !well_formed {
            return Err(bad(&format!("'{}' is not a host name or address", shared::text::escaped(host))));
        }
        Ok(BrokerUrl { host: host.to_string(), port, credentials })
    }
}

/// `--mqtt-id`: letters, digits, `-` and `_` (a topic level and an entity id in Home Assistant).
pub fn parse_box_id(id: &str) -> Result<String, String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("'{id}': use letters, digits, - and _"));
    }
    Ok(id.to_string())
}

/// `--mqtt-topic`: one or more topic levels (`flowercam`, `home/garden`), none empty, without
/// the wildcards `+` and `#` (a broker drops a client that publishes to them) and not under
/// `$` (the broker's own topics).
pub fn parse_topic_root(root: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("'{root}': {why}"));
    if root.is_empty() || root.split('/').any(str::is_empty) {
        return bad("topic levels must not be empty (no leading, trailing or double /)");
    }
    if root.contains(['+', '#']) {
        return bad("+ and # are wildcards for subscribing, not a topic to publish to");
    }
    if root.starts_with('$') {
        return bad("topics starting with $ are the broker's own");
    }
    if root.contains(shared::text::unprintable) || root.len() > 200 {
        return bad("use printable text, at most 200 bytes");
    }
    Ok(root.to_string())
}

/// This machine's host name as a box id, `flowercam` when it has none usable.
pub fn default_box_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let id: String = name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if id.is_empty() { "flowercam".into() } else { id }
}

pub struct MqttOptions {
    pub url: String,
    pub id: String,
    pub topic_root: String,
    pub outbox: usize,
    /// Shown in Home Assistant's device card.
    pub model_name: String,
}

struct Topics {
    availability: String,
    events: String,
    state: String,
    discovery: String,
}

impl Topics {
    fn new(root: &str, id: &str) -> Self {
        let base = format!("{}/{id}", root.trim_end_matches('/'));
        Topics {
            availability: format!("{base}/availability"),
            events: format!("{base}/events"),
            state: format!("{base}/state"),
            discovery: format!("homeassistant/sensor/flowercam_{id}/answer/config"),
        }
    }
}

/// Home Assistant's discovery message: one sensor, the answer, with the event as attributes.
fn discovery(topics: &Topics, id: &str, model_name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "name": "Answer",
        "unique_id": format!("flowercam_{id}_answer"),
        "state_topic": topics.state,
        "value_template": "{{ 'no frames' if value_json.event == 'source_stale' else value_json.label }}",
        "json_attributes_topic": topics.state,
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "icon": "mdi:flower",
        "device": {
            "identifiers": [format!("flowercam_{id}")],
            "name": format!("flowercam {id}"),
            "model": model_name,
            "manufacturer": "flowercam",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    }))
    .expect("discovery serializes")
}

/// What went to the client and awaits its PUBACK, in the order sent. `None` marks a message that
/// is re-sent on each connection anyway (availability, discovery, state).
#[derive(Default)]
struct InFlight {
    sent: VecDeque<Sent>,
}

struct Sent {
    pkid: Option<u16>,
    event: Option<FieldEvent>,
}

struct Link {
    client: Client,
    in_flight: Mutex<InFlight>,
    connected: AtomicBool,
    closing: AtomicBool,
    outbox: Arc<Outbox>,
    topics: Topics,
}

impl Link {
    /// Hands one message to the client and records it in flight, under one lock so that the
    /// in-flight order is the order rumqttc sends in. Never blocks (the pump thread calls it too).
    fn send(&self, topic: &str, retain: bool, payload: Vec<u8>, event: Option<FieldEvent>) -> bool {
        let mut in_flight = self.in_flight.lock().expect("in flight");
        if self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload).is_err() {
            return false;
        }
        in_flight.sent.push_back(Sent { pkid: None, event });
        true
    }

    fn on_outgoing_publish(&self, pkid: u16) {
        let mut in_flight = self.in_flight.lock().expect("in flight");
        if let Some(sent) = in_flight.sent.iter_mut().find(|s| s.pkid.is_none()) {
            sent.pkid = Some(pkid);
        }
    }

    fn on_puback(&self, pkid: u16) {
        let mut in_flight = self.in_flight.lock().expect("in flight");
        if let Some(i) = in_flight.sent.iter().position(|s| s.pkid == Some(pkid)) {
            in_flight.sent.remove(i);
        }
    }

    /// The connection dropped: unacknowledged events go back to the outbox's front, in order.
    fn requeue_unacknowledged(&self) {
        let sent = std::mem::take(&mut self.in_flight.lock().expect("in flight").sent);
        let events: Vec<FieldEvent> = sent.into_iter().filter_map(|s| s.event).collect();
        if !events.is_empty() {
            tracing::info!("mqtt: {} unacknowledged event(s) will be sent again", events.len());
        }
        for event in events.into_iter().rev() {
            self.outbox.unpop(event);
        }
    }

    fn unacknowledged(&self) -> usize {
        self.in_flight.lock().expect("in flight").sent.len()
    }
}

pub struct Mqtt {
    link: Arc<Link>,
    pump: Option<JoinHandle<()>>,
    feeder: Option<JoinHandle<()>>,
}

impl Mqtt {
    /// Starts the connection and delivery threads. A broker that is down is no error: events
    /// wait in the outbox and the connection is retried with backoff.
    pub fn start(options: MqttOptions) -> anyhow::Result<Self> {
        let url = BrokerUrl::parse(&options.url)?;
        let shown = redact(&options.url);
        let topics = Topics::new(&options.topic_root, &options.id);
        let mut mqtt_options = rumqttc::MqttOptions::new(format!("flowercam-{}", options.id), url.host.clone(), url.port);
        mqtt_options.set_keep_alive(Duration::from_secs(10));
        mqtt_options.set_clean_session(true);
        mqtt_options.set_last_will(LastWill::new(topics.availability.clone(), "offline", QoS::AtLeastOnce, true));
        if let Some((user, password)) = &url.credentials {
            mqtt_options.set_credentials(user.clone(), password.clone());
        }
        let (client, connection) = Client::new(mqtt_options, CLIENT_CAPACITY);
        let link = Arc::new(Link {
            client,
            in_flight: Mutex::new(InFlight::default()),
            connected: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            outbox: Arc::new(Outbox::new(options.outbox)),
            topics,
        });
        let greeting = discovery(&link.topics, &options.id, &options.model_name);
        let pump = {
            let link = Arc::clone(&link);
            std::thread::Builder::new().name("mqtt".into()).spawn(move || pump(connection, &link, &greeting, &shown))?
        };
        let feeder = {
            let link = Arc::clone(&link);
            std::thread::Builder::new().name("mqtt-outbox".into()).spawn(move || feed(&link))?
        };
        tracing::info!("mqtt: events to {} under {}", redact(&options.url), link.topics.events.trim_end_matches("/events"));
        Ok(Mqtt { link, pump: Some(pump), feeder: Some(feeder) })
    }
}

/// Drives the connection: says `online` and the discovery on each connect, tracks acks, and on
/// a drop puts unacknowledged events back and waits before the next try.
fn pump(mut connection: Connection, link: &Link, greeting: &[u8], shown: &str) {
    let mut backoff = Backoff::new();
    for notification in connection.iter() {
        match notification {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("mqtt: connected to {shown}");
                backoff.reset();
                link.send(&link.topics.availability, true, b"online".to_vec(), None);
                link.send(&link.topics.discovery, true, greeting.to_vec(), None);
                link.connected.store(true, Ordering::SeqCst);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => link.on_outgoing_publish(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => link.on_puback(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) if link.closing.load(Ordering::SeqCst) => break,
            Ok(_) => {}
            Err(e) => {
                link.connected.store(false, Ordering::SeqCst);
                link.requeue_unacknowledged();
                if link.closing.load(Ordering::SeqCst) {
                    break;
                }
                backoff.pause(&anyhow::anyhow!("mqtt: {shown}: {e}"));
            }
        }
    }
}

/// Moves events from the outbox to the client while connected: to `events`, and retained to
/// `state`. While the broker is away the events stay in the outbox, where its bound holds.
fn feed(link: &Link) {
    loop {
        if link.closing.load(Ordering::SeqCst) {
            return;
        }
        if !link.connected.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let Some(event) = link.outbox.pop(Duration::from_millis(200)) else {
            if link.outbox.is_closed() {
                return;
            }
            continue;
        };
        let json = event.to_json();
        if link.send(&link.topics.events, false, json.clone(), Some(event.clone())) {
            if event.event.tells_the_answer() {
                link.send(&link.topics.state, true, json, None);
            }
        } else {
            // The client's queue is full: try again shortly.
            link.outbox.unpop(event);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl EventSink for Mqtt {
    fn send(&mut self, event: &FieldEvent) {
        self.link.outbox.push(event.clone());
    }

    fn close(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        self.link.outbox.close();
        // Wait for the outbox to empty and every event to be acknowledged.
        while Instant::now() < deadline && (!self.link.outbox.is_empty() || self.link.unacknowledged() > 0) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.link.outbox.len() + self.link.unacknowledged();
        if left > 0 {
            tracing::warn!("mqtt: stopping with {left} event(s) undelivered");
        }
        self.link.closing.store(true, Ordering::SeqCst);
        if self.link.connected.load(Ordering::SeqCst) {
            let _ = self.link.client.try_publish(&self.link.topics.availability, QoS::AtLeastOnce, true, "offline");
        }
        let _ = self.link.client.disconnect();
        for handle in [self.feeder.take(), self.pump.take()].into_iter().flatten() {
            while !handle.is_finished() && Instant::now() < deadline + Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.link.outbox.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let url = BrokerUrl::parse("mqtt://box:pw@broker.lan:1884").unwrap();
        assert_eq!(url, BrokerUrl { host: "broker.lan".into(), port: 1884, credentials: Some(("box".into(), "pw".into())) });
        assert_eq!(BrokerUrl::parse("mqtt://127.0.0.1").unwrap().port, 1883);
        assert_eq!(BrokerUrl::parse("tcp://[::1]:1999/").unwrap().host, "::1");
        let encoded = BrokerUrl::parse("mqtt://box:se%2Fcr%40t@broker").unwrap();
        assert_eq!(encoded.credentials, Some(("box".into(), "se/cr@t".into())), "percent-decoded");
        let raw = BrokerUrl::parse("mqtt://box:se/cret@broker").unwrap_err().to_string();
        assert!(raw.contains("is written %2F") && !raw.contains("cret"), "{raw}");
        let v6 = BrokerUrl::parse("mqtt://[::1]").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1883), "brackets without a port");
        for bad in [
            "http://broker",
            "mqtt://",
            "mqtt://broker:port",
            "mqtt://broker/topic",
            "broker:1883",
            "mqtt://::1",
            "mqtt://127.0.0.1?x=1",
            "mqtt://host:1883:1883",
            "mqtt://127.0.0.1:0",
            "mqtt://bro\nker",
            "mqtt://[::1",
            "mqtt://[::1]x",
            "mqtt://h:+1",
            "mqtt://[zz]",
            "mqtt://h%20x",
            "mqtt://[broker.lan]",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
        let e = BrokerUrl::parse("mqtts://u:hunter2@broker").unwrap_err().to_string();
        assert!(e.contains("TLS") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn box_ids_are_topic_safe() {
        assert!(parse_box_id("verge-3_b").is_ok());
        for bad in ["", "a/b", "a+b", "a#", "a b"] {
            assert!(parse_box_id(bad).is_err(), "{bad}");
        }
        assert!(parse_box_id(&default_box_id()).is_ok());
    }

    #[test]
    fn topic_roots_are_topics_a_box_may_publish_to() {
        for good in ["flowercam", "home/garden", "site-3/boxes"] {
            assert_eq!(parse_topic_root(good).as_deref(), Ok(good));
        }
        for bad in ["", "+", "#", "a/+/b", "home/#", "$SYS", "/a", "a/", "a//b", "a\u{0}b"] {
            assert!(parse_topic_root(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn discovery_names_the_topics() {
        let topics = Topics::new("flowercam/", "verge3");
        assert_eq!(topics.state, "flowercam/verge3/state");
        let config: serde_json::Value = serde_json::from_slice(&discovery(&topics, "verge3", "daffodil_coltsfoot")).unwrap();
        assert_eq!(config["state_topic"], "flowercam/verge3/state");
        assert_eq!(config["availability_topic"], "flowercam/verge3/availability");
        assert_eq!(config["unique_id"], "flowercam_verge3_answer");
        assert_eq!(config["device"]["model"], "daffodil_coltsfoot");
    }
}
