//! `users`: one fake person per user, the `data` of a `users` RECORD,
//! written straight as JSON with the Python `UserGenerator.generate` field
//! order and types: `id` (1-based), `created_at`, `updated_at`, `name`,
//! `title`, `age` (16..=66), `email` (`<word><year>+<id>@<domain>`, unique
//! per id like the Python one), `telephone`, `gender`, `language`,
//! `academic_degree`, `nationality`, `occupation`, `height` (a string,
//! `"1.50"`..`"2.00"`), `blood_type`, `weight` (38..=90) and `address`
//! (`street_number` 1..=1400 as a string, `street_name`, `city`, `state`,
//! `province`, `postal_code`, `country_code`).

use crate::messages::{push_str, push_uint};
use crate::primitives::{push_mask, push_random_airbyte_time, push_two_decimals};
use crate::rng::Rng;
use crate::vocabulary::Vocabulary;

/// The per-stream salt of the `users` generators.
pub const SALT: u64 = 0x7573_6572_735f_7631; // "users_v1"

/// Appends a random element of `list` as a JSON string.
#[inline]
fn push_pick(buf: &mut Vec<u8>, rng: &mut Rng, list: &[Box<str>]) {
    push_str(buf, rng.pick(list).map_or("", |w| w));
}

/// Appends the `data` object of the user at 0-based `index` (its `id` is
/// `index + 1`). Everything but `updated_at` depends only on `seed` and
/// `index`.
pub fn write_user(buf: &mut Vec<u8>, vocab: &Vocabulary, seed: u64, index: u64, updated_at: &[u8]) {
    let mut rng = Rng::for_record(seed, SALT, index);
    let id = index + 1;
    let rng = &mut rng;

    buf.extend_from_slice(b"{\"id\":");
    push_uint(buf, id);
    buf.extend_from_slice(b",\"created_at\":\"");
    push_random_airbyte_time(buf, rng);
    buf.extend_from_slice(b"\",\"updated_at\":\"");
    buf.extend_from_slice(updated_at);
    buf.extend_from_slice(b"\",\"name\":");
    let names = if rng.below(2) == 0 {
        &vocab.names_female
    } else {
        &vocab.names_male
    };
    push_pick(buf, rng, names);
    buf.extend_from_slice(b",\"title\":");
    let titles = &vocab.titles[rng.below(4) as usize];
    push_pick(buf, rng, titles);
    buf.extend_from_slice(b",\"age\":");
    push_uint(buf, rng.int_in(16, 66) as u64);

    buf.extend_from_slice(b",\"email\":\"");
    buf.extend_from_slice(rng.pick(&vocab.usernames).map_or("user", |w| w).as_bytes());
    push_uint(buf, rng.int_in(1800, 2100) as u64);
    buf.push(b'+');
    push_uint(buf, id);
    buf.extend_from_slice(
        rng.pick(&vocab.email_domains)
            .map_or("@example.com", |w| w)
            .as_bytes(),
    );

    buf.extend_from_slice(b"\",\"telephone\":\"");
    let mask = rng
        .pick(&vocab.telephone_formats)
        .map_or("###-###-####", |w| w);
    push_mask(buf, rng, mask);
    buf.extend_from_slice(b"\",\"gender\":");
    push_pick(buf, rng, &vocab.genders);
    buf.extend_from_slice(b",\"language\":");
    push_pick(buf, rng, &vocab.languages);
    buf.extend_from_slice(b",\"academic_degree\":");
    push_pick(buf, rng, &vocab.academic_degrees);
    buf.extend_from_slice(b",\"nationality\":");
    push_pick(buf, rng, &vocab.nationalities);
    buf.extend_from_slice(b",\"occupation\":");
    push_pick(buf, rng, &vocab.occupations);
    buf.extend_from_slice(b",\"height\":\"");
    push_two_decimals(buf, rng, 1.5, 2.0);
    buf.extend_from_slice(b"\",\"blood_type\":");
    push_pick(buf, rng, &vocab.blood_types);
    buf.extend_from_slice(b",\"weight\":");
    push_uint(buf, rng.int_in(38, 90) as u64);

    buf.extend_from_slice(b",\"address\":{\"street_number\":\"");
    push_uint(buf, rng.int_in(1, 1400) as u64);
    buf.extend_from_slice(b"\",\"street_name\":");
    push_pick(buf, rng, &vocab.street_names);
    buf.extend_from_slice(b",\"city\":");
    push_pick(buf, rng, &vocab.cities);
    buf.extend_from_slice(b",\"state\":");
    push_pick(buf, rng, &vocab.states);
    buf.extend_from_slice(b",\"province\":");
    push_pick(buf, rng, &vocab.states);
    buf.extend_from_slice(b",\"postal_code\":\"");
    push_mask(buf, rng, &vocab.postal_code_format);
    buf.extend_from_slice(b"\",\"country_code\":");
    push_pick(buf, rng, &vocab.country_codes);
    buf.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn user_has_the_python_fields_and_types() {
        let vocab = Vocabulary::load().expect("embedded data");
        let mut buf = Vec::new();
        write_user(&mut buf, &vocab, 1, 41, b"2026-11-25T09:57:48+00:00");
        let v: Value = serde_json::from_slice(&buf).expect("valid JSON");
        let obj = v.as_object().expect("object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "created_at",
                "updated_at",
                "name",
                "title",
                "age",
                "email",
                "telephone",
                "gender",
                "language",
                "academic_degree",
                "nationality",
                "occupation",
                "height",
                "blood_type",
                "weight",
                "address"
            ]
        );
        assert_eq!(v["id"], 42);
        assert!(v["email"].as_str().expect("email").contains("+42@"));
        let age = v["age"].as_u64().expect("age");
        assert!((16..=66).contains(&age));
        assert!(v["height"].is_string() && v["weight"].is_u64());
        let addr = v["address"].as_object().expect("address");
        let keys: Vec<&str> = addr.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "street_number",
                "street_name",
                "city",
                "state",
                "province",
                "postal_code",
                "country_code"
            ]
        );
        assert!(addr.values().all(Value::is_string));
        let created = v["created_at"].as_str().expect("created_at");
        assert_eq!(created.len(), 25);
        assert!(created.ends_with("+00:00"));
    }
}
