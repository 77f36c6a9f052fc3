//! Names for small enums of settings: one list of `Variant => "name"` gives `name()`, `Display`
//! and `FromStr` (with an error listing the accepted names), so the command line, the manifest
//! and the messages cannot disagree.

/// `named_enum!(Type, "what it is", { Type::A => "a", Type::B => "b" })`.
#[macro_export]
macro_rules! named_enum {
    ($ty:ty, $what:literal, { $($variant:path => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name on the command line and in files.
            pub fn name(self) -> &'static str {
                match self {
                    $($variant => $name),+
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
                    $($name => Ok($variant),)+
                    _ => Err(format!("unknown {} '{s}' (expected {})", $what, $crate::named::one_of(&[$($name),+]))),
                }
            }
        }
    };
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
}
