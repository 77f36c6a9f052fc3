//! A file's path as text that names it exactly: printed beside each result of `edge classify`,
//! where a name that is not UTF-8 (or, in the tab-separated lines, holds a tab or a line break)
//! must neither break the output nor look like another file's.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `path` with each byte that is not UTF-8 written `\xNN` and the rest as
/// [`shared::text::escaped`] writes it (`\t`, `\n`, `\u{1b}`, a backslash doubled), so no two
/// paths give the same text.
pub fn escaped(path: &Path) -> String {
    let mut text = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        text.push_str(&shared::text::escaped(chunk.valid()));
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// `path` for a JSON string, which carries any text as it is: the name itself when it is UTF-8,
/// else [`escaped`].
pub fn for_json(path: &Path) -> String {
    path.to_str().map_or_else(|| escaped(path), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn names_that_are_not_plain_text_stay_apart_and_on_one_line() {
        let path = |bytes: &[u8]| escaped(Path::new(OsStr::from_bytes(bytes)));
        assert_eq!(path(b"photos/daffodil 1.jpg"), "photos/daffodil 1.jpg");
        assert_eq!(path("Blüte.jpg".as_bytes()), "Blüte.jpg");
        assert_eq!(path(b"a\xffb.jpg"), "a\\xffb.jpg");
        assert_ne!(path(b"a\xffb.jpg"), path(b"a\xfeb.jpg"));
        assert_eq!(path(b"tab\there\nline.jpg"), "tab\\there\\nline.jpg");
        // A literal backslash-x in a name is not mistaken for an escaped byte.
        assert_ne!(path(b"a\\xffb.jpg"), path(b"a\xffb.jpg"));
        assert_eq!(for_json(Path::new("tab\there.jpg")), "tab\there.jpg", "JSON escapes a tab itself");
        assert_eq!(for_json(Path::new(OsStr::from_bytes(b"a\xffb.jpg"))), "a\\xffb.jpg");
    }
}
