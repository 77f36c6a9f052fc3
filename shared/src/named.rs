//! Names for small enums of settings: one list of `Variant => "name"` gives `name()`, `Display`
//! and `FromStr` (with an error listing the accepted names), so the command line, the manifest
//! and the messages cannot disagree. With `serde`, the same names are the enum's spelling in
//! every JSON file and report (run.json, `--json`, the ONNX metadata's manifest), while postcard
//! (bundles, checkpoints) keeps storing the variant's index as a derived impl would, so that
//! bundles written before read the same.

use std::fmt;
use std::marker::PhantomData;

use serde::Serializer;
use serde::de::{self, Deserializer, EnumAccess, VariantAccess, Visitor};

#[doc(hidden)]
pub use serde as __serde;

/// `named_enum!(Type, "what it is", { Type::A => "a", Type::B => "b" | "bee" })`: `"bee"` is
/// also read on the command line, `"b"` written everywhere; with `serde` before the list it also
/// implements `Serialize` and `Deserialize` by name (see the module's doc). The type must be an
/// enum of unit variants.
#[macro_export]
macro_rules! named_enum {
    ($ty:ident, $what:literal, { $($owner:ident :: $variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// The name on the command line and in files.
            pub fn name(self) -> &'static str {
                match self {
                    $($owner::$variant => $name),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name $(| $alias)* => Ok($owner::$variant),)+
                    _ => Err(format!("unknown {} '{s}' (expected {})", $what, $crate::named::one_of(&[$($name),+]))),
                }
            }
        }

        impl $crate::named::Named for $ty {
            const WHAT: &'static str = $what;
            const TYPE: &'static str = stringify!($ty);
            const TABLE: &'static [(Self, &'static str, &'static str)] = &[$(($owner::$variant, $name, stringify!($variant))),+];
            const RUST_NAMES: &'static [&'static str] = &[$(stringify!($variant)),+];
            fn index(self) -> u32 {
                self as u32
            }
        }
    };
    ($ty:ident, $what:literal, serde, { $($owner:ident :: $variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        $crate::named_enum!($ty, $what, { $($owner::$variant => $name $(| $alias)*),+ });

        impl $crate::named::__serde::Serialize for $ty {
            fn serialize<S: $crate::named::__serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $crate::named::serialize(*self, serializer)
            }
        }

        impl<'de> $crate::named::__serde::Deserialize<'de> for $ty {
            fn deserialize<D: $crate::named::__serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::named::deserialize(deserializer)
            }
        }
    };
}

/// What [`named_enum!`] records of a type, for the serde impls.
pub trait Named: Copy + 'static {
    /// What a value is, for messages ("resize policy").
    const WHAT: &'static str;
    /// The type's Rust name, as a derived impl hands it to the serializer.
    const TYPE: &'static str;
    /// Each variant with its name and its Rust spelling (what JSON files of earlier versions hold).
    const TABLE: &'static [(Self, &'static str, &'static str)];
    /// The Rust spellings alone, as `Deserializer::deserialize_enum` takes them.
    const RUST_NAMES: &'static [&'static str];
    /// The variant's place in the declaration: how postcard stores it.
    fn index(self) -> u32;
}

fn names<T: Named>() -> String {
    one_of(&T::TABLE.iter().map(|&(_, name, _)| name).collect::<Vec<_>>())
}

/// By name where the format is read by people (JSON), by variant index otherwise (postcard).
pub fn serialize<T: Named, S: Serializer>(value: T, serializer: S) -> Result<S::Ok, S::Error> {
    let &(_, name, rust_name) = T::TABLE.iter().find(|entry| entry.0.index() == value.index()).expect("every variant is in the table");
    if serializer.is_human_readable() {
        serializer.serialize_str(name)
    } else {
        serializer.serialize_unit_variant(T::TYPE, value.index(), rust_name)
    }
}

/// Reads what [`serialize`] writes; in JSON also the Rust spelling that files of earlier
/// versions hold (`"CenterCrop"` for `center-crop`), so their run folders still export and resume.
pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
    struct ByName<T>(PhantomData<T>);
    impl<'de, T: Named> Visitor<'de> for ByName<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a {} ({})", T::WHAT, names::<T>())
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            T::TABLE
                .iter()
                .find(|&&(_, name, rust_name)| s == name || s == rust_name)
                .map(|entry| entry.0)
                .ok_or_else(|| E::custom(format!("unknown {} '{s}' (expected {})", T::WHAT, names::<T>())))
        }
        fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<T, A::Error> {
            let (index, variant): (u32, _) = data.variant()?;
            variant.unit_variant()?;
            T::TABLE
                .iter()
                .find(|entry| entry.0.index() == index)
                .map(|entry| entry.0)
                .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Unsigned(index.into()), &self))
        }
    }
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(ByName(PhantomData))
    } else {
        deserializer.deserialize_enum(T::TYPE, T::RUST_NAMES, ByName(PhantomData))
    }
}

/// "a", "a or b", "a, b or c".
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Convention, Precision, ResizePolicy};

    #[test]
    fn names_round_trip_and_errors_list_the_choices() {
        for p in [ResizePolicy::Stretch, ResizePolicy::CenterCrop] {
            assert_eq!(p.name().parse::<ResizePolicy>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("int8".parse::<Precision>(), Ok(Precision::Int8));
        assert_eq!("rgb".parse::<Convention>().unwrap_err(), "unknown input convention 'rgb' (expected caffe or torchvision)");
        assert_eq!(super::one_of(&["a", "b", "c"]), "a, b or c");
    }

    /// What `#[derive(Serialize, Deserialize)]` made of `ResizePolicy` before: postcard must
    /// read and write the same bytes, or every bundle written before would stop loading.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Derived {
        Stretch,
        CenterCrop,
    }

    #[test]
    fn postcard_keeps_the_derived_variant_index() {
        for (ours, derived) in [(ResizePolicy::Stretch, Derived::Stretch), (ResizePolicy::CenterCrop, Derived::CenterCrop)] {
            let bytes = postcard::to_stdvec(&ours).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&derived).unwrap());
            assert_eq!(postcard::from_bytes::<ResizePolicy>(&bytes).unwrap(), ours);
        }
        assert!(postcard::from_bytes::<ResizePolicy>(&[7]).is_err(), "no variant 7");
    }

    fn round_trips<T: super::Named + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>() {
        for (position, &(value, name, _)) in T::TABLE.iter().enumerate() {
            // Listed in declaration order, so each variant's index is its place in the table.
            assert_eq!(postcard::to_stdvec(&value).unwrap(), [position as u8], "{name}");
            assert_eq!(postcard::from_bytes::<T>(&[position as u8]).unwrap(), value);
            assert_eq!(serde_json::to_value(value).unwrap(), name);
            assert_eq!(serde_json::from_value::<T>(name.into()).unwrap(), value);
        }
    }

    #[test]
    fn every_variant_of_every_manifest_setting_round_trips() {
        use crate::{HeadKind, OpenSetMethod};
        round_trips::<ResizePolicy>();
        round_trips::<Convention>();
        round_trips::<HeadKind>();
        round_trips::<Precision>();
        round_trips::<OpenSetMethod>();
    }

    #[test]
    fn json_spells_the_command_line_name_and_reads_earlier_files() {
        assert_eq!(serde_json::to_string(&ResizePolicy::CenterCrop).unwrap(), "\"center-crop\"");
        assert_eq!(serde_json::to_string(&Precision::Int8).unwrap(), "\"int8\"");
        assert_eq!(serde_json::from_str::<ResizePolicy>("\"center-crop\"").unwrap(), ResizePolicy::CenterCrop);
        // Run folders and reports of earlier versions hold the Rust spelling.
        assert_eq!(serde_json::from_str::<ResizePolicy>("\"CenterCrop\"").unwrap(), ResizePolicy::CenterCrop);
        let wrong = serde_json::from_str::<Convention>("\"rgb\"").unwrap_err().to_string();
        assert!(wrong.contains("unknown input convention 'rgb' (expected caffe or torchvision)"), "{wrong}");
        assert!(serde_json::from_str::<Convention>("1").is_err());
    }
}
