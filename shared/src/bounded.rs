//! Lists read from a bundle with a bound on their length, checked before their elements are. A
//! list of empty strings is a byte an element in the file and 24 in memory: 20 MB of labels took
//! 518 MB to read. The lists that grow that way carry a bound here (`#[serde(deserialize_with)]`),
//! well above what the trainer writes.

use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

/// What a bundle's refusal adds when a list may have been over its bound (postcard keeps no
/// message of its own for it).
pub fn over_a_bound() -> String {
    format!(
        " (or it holds a list longer than a bundle may: over {MAX_LABELS} labels, {MAX_SELF_CHECKS} self-check images or {MAX_CONVOLUTIONS} convolutions)"
    )
}

/// The most labels a bundle may have.
pub const MAX_LABELS: usize = 1_000;
/// The most self-check images a bundle may hold (the trainer writes 8).
pub const MAX_SELF_CHECKS: usize = 64;
/// The most convolutions a trunk may list (VGG16 has 13).
pub const MAX_CONVOLUTIONS: usize = 64;

struct AtMost<T> {
    most: usize,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for AtMost<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a list of at most {}", self.most)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        if let Some(length) = seq.size_hint().filter(|&n| n > self.most) {
            return Err(A::Error::invalid_length(length, &self));
        }
        let mut list = Vec::new();
        while let Some(element) = seq.next_element()? {
            if list.len() == self.most {
                return Err(A::Error::invalid_length(self.most + 1, &self));
            }
            list.push(element);
        }
        Ok(list)
    }
}

fn at_most<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D, most: usize) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_seq(AtMost { most, element: PhantomData })
}

pub fn labels<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    at_most(deserializer, MAX_LABELS)
}

pub fn self_checks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<crate::SelfCheck>, D::Error> {
    at_most(deserializer, MAX_SELF_CHECKS)
}

pub fn convolutions<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u32>, D::Error> {
    at_most(deserializer, MAX_CONVOLUTIONS)
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Labelled {
        #[serde(deserialize_with = "super::labels")]
        labels: Vec<String>,
    }

    #[test]
    fn a_list_over_its_bound_is_refused_from_its_length() {
        let within = Labelled { labels: vec!["a".into(); super::MAX_LABELS] };
        let bytes = postcard::to_stdvec(&within).unwrap();
        assert_eq!(postcard::from_bytes::<Labelled>(&bytes).unwrap().labels.len(), super::MAX_LABELS);
        let over = postcard::to_stdvec(&Labelled { labels: vec![String::new(); super::MAX_LABELS + 1] }).unwrap();
        assert_eq!(postcard::from_bytes::<Labelled>(&over).unwrap_err(), postcard::Error::SerdeDeCustom, "what bundle.rs explains");
    }
}
