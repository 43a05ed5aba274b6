//! `vocabulary`: the embedded word lists (names, titles, occupations, cities,
//! ...) the `users` stream draws from, loaded once and pre-escaped as JSON
//! string contents so a record is written with plain byte copies.
//!
//! The lists are the EN-locale data of mimesis 6.1.1 (MIT License), the
//! library the Python connector uses; they live in
//! `data/mimesis_en.json`.

use serde_json::Value;

/// The embedded word lists (see `data/mimesis_en.json`).
const MIMESIS_EN: &str = include_str!("../data/mimesis_en.json");

/// A list of words, each already escaped for use inside a JSON string
/// (without the quotes).
pub type WordList = Vec<Box<str>>;

/// Every word list the generators use.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    /// First names of women.
    pub names_female: WordList,
    /// First names of men.
    pub names_male: WordList,
    /// Titles: female typical, female academic, male typical, male academic.
    pub titles: [WordList; 4],
    /// Words for the local part of e-mail addresses, lower-cased.
    pub usernames: WordList,
    /// E-mail domains, each starting with `@`.
    pub email_domains: WordList,
    /// Telephone masks, `#` standing for a digit.
    pub telephone_formats: WordList,
    /// Genders.
    pub genders: WordList,
    /// Languages.
    pub languages: WordList,
    /// Academic degrees.
    pub academic_degrees: WordList,
    /// Nationalities.
    pub nationalities: WordList,
    /// Occupations.
    pub occupations: WordList,
    /// Blood types (with a Unicode minus, `A−`, like mimesis).
    pub blood_types: WordList,
    /// Street names.
    pub street_names: WordList,
    /// City names.
    pub cities: WordList,
    /// US state names (mimesis uses them for both `state` and `province`).
    pub states: WordList,
    /// The postal code mask (`#####`).
    pub postal_code_format: Box<str>,
    /// ISO 3166-1 alpha-2 country codes.
    pub country_codes: WordList,
}

/// Escapes `s` for use between the quotes of a JSON string.
pub fn escape_json(s: &str) -> Box<str> {
    let quoted = Value::String(s.to_owned()).to_string();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .into()
}

impl Vocabulary {
    /// Parses the embedded word lists. Fails only if the embedded data is
    /// malformed (a build defect), never on user input.
    pub fn load() -> Result<Self, String> {
        let root: Value = serde_json::from_str(MIMESIS_EN)
            .map_err(|e| format!("embedded word lists are not JSON: {e}"))?;
        let list = |key: &str, lower: bool| -> Result<WordList, String> {
            let items = root
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| format!("embedded word list {key:?} is missing"))?;
            let words: WordList = items
                .iter()
                .filter_map(Value::as_str)
                .map(|w| {
                    if lower {
                        escape_json(&w.to_lowercase())
                    } else {
                        escape_json(w)
                    }
                })
                .collect();
            if words.is_empty() {
                return Err(format!("embedded word list {key:?} is empty"));
            }
            Ok(words)
        };
        let postal_code_format = root
            .get("postal_code_format")
            .and_then(Value::as_str)
            .unwrap_or("#####");
        Ok(Self {
            names_female: list("names_female", false)?,
            names_male: list("names_male", false)?,
            titles: [
                list("titles_female_typical", false)?,
                list("titles_female_academic", false)?,
                list("titles_male_typical", false)?,
                list("titles_male_academic", false)?,
            ],
            usernames: list("usernames", true)?,
            email_domains: list("email_domains", false)?,
            telephone_formats: list("telephone_formats", false)?,
            genders: list("genders", false)?,
            languages: list("languages", false)?,
            academic_degrees: list("academic_degrees", false)?,
            nationalities: list("nationalities", false)?,
            occupations: list("occupations", false)?,
            blood_types: list("blood_types", false)?,
            street_names: list("street_names", false)?,
            cities: list("cities", false)?,
            states: list("states", false)?,
            postal_code_format: escape_json(postal_code_format),
            country_codes: list("country_codes", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_escapes() {
        let v = Vocabulary::load().expect("embedded data");
        assert!(v.occupations.len() > 1000);
        assert_eq!(v.country_codes.len(), 247);
        assert!(v.email_domains.iter().all(|d| d.starts_with('@')));
        assert!(v.blood_types.iter().any(|b| &**b == "A−"));
        assert_eq!(&*escape_json("a\"b\n"), "a\\\"b\\n");
    }
}
