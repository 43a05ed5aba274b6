//! `naming`: how stream and namespace names become file and folder names,
//! as Airbyte's `StandardNameTransformer` does it, so that files land where
//! Airbyte's own file destinations would put them.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The prefix of a raw table (or raw file) name.
pub const RAW_TABLE_PREFIX: &str = "_airbyte_raw_";

/// Turns a stream or namespace name into an identifier made only of ASCII
/// letters, digits and `_`.
///
/// The name is decomposed (Unicode NFKD) and its combining marks dropped, so
/// accented letters keep their base letter; each run of whitespace becomes
/// one `_`; every other character that is not an ASCII letter, digit or `_`
/// becomes `_`. A leading digit is kept.
///
/// ```
/// use airlock_plugin_sdk::naming::convert_stream_name;
///
/// assert_eq!(convert_stream_name("spécial"), "special");
/// assert_eq!(convert_stream_name("operator+1"), "operator_1");
/// assert_eq!(convert_stream_name("my  stream"), "my_stream");
/// assert_eq!(convert_stream_name("1abc"), "1abc");
/// ```
pub fn convert_stream_name(name: &str) -> String {
    let mut converted = String::with_capacity(name.len());
    let mut in_whitespace = false;
    for c in name.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            if !in_whitespace {
                converted.push('_');
            }
            in_whitespace = true;
            continue;
        }
        in_whitespace = false;
        converted.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    converted
}

/// The raw table name of a stream: [`RAW_TABLE_PREFIX`] followed by
/// [`convert_stream_name`] of the stream name; file destinations add their
/// extension to it.
///
/// ```
/// assert_eq!(airlock_plugin_sdk::naming::raw_table_name("users"), "_airbyte_raw_users");
/// ```
pub fn raw_table_name(stream: &str) -> String {
    format!("{RAW_TABLE_PREFIX}{}", convert_stream_name(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_stream_names_from_airbyte_destination_tests() {
        for (name, expected) in [
            ("users", "users"),
            ("camelCase", "camelCase"),
            ("ALL_CAPS", "ALL_CAPS"),
            ("spécial", "special"),
            ("operator+1", "operator_1"),
            ("1abc", "1abc"),
            ("with space", "with_space"),
            ("tab\t \nrun", "tab_run"),
            ("a.b-c/d", "a_b_c_d"),
            ("Ångström", "Angstrom"),
            ("ﬁle", "file"),
            ("日本", "__"),
            ("", ""),
        ] {
            assert_eq!(convert_stream_name(name), expected, "{name:?}");
        }
    }

    #[test]
    fn converted_names_never_hold_path_separators_or_dots() {
        for name in ["..", "../etc", "a/b", "a\\b", "."] {
            let converted = convert_stream_name(name);
            assert!(
                converted
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{converted}"
            );
        }
    }

    #[test]
    fn raw_table_name_prefixes_the_converted_name() {
        assert_eq!(raw_table_name("spécial"), "_airbyte_raw_special");
    }
}
