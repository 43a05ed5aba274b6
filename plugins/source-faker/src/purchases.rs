//! `purchases`: the purchases of each user, as the Python
//! `PurchaseGenerator.generate` makes them.
//!
//! How many purchases a user has depends only on the last decimal digit of
//! its 0-based index `u` (so every 10 users make 10 purchases, and ids stay
//! dense without coordination): digit 6 → none, 7 → one (id shifted down by
//! one), 8 → two (ids shifted down by one), anything else → one; purchase
//! `i` of user `u` has id `u + i + 1 - shift` and `user_id` `u + 1`.
//!
//! Fields, in order: `id`, `product_id` (1..=100), `user_id`, `created_at`
//! (the earlier of two random datetimes, written like the real connector in
//! Python's naive `isoformat()`, `2001-01-05T21:37:30.796635`, without
//! `+00:00`), `updated_at`, `added_to_cart_at` (`created_at` plus random
//! whole days), `purchased_at` (70 %: `added_to_cart_at` plus random days)
//! and `returned_at` (15 % of those: `purchased_at` plus random days). Like
//! the real connector, absent (`None`) dates are left out of the record, not
//! written as `null`.

use crate::calendar::{write_airbyte_time, write_iso_micros};
use crate::messages::push_uint;
use crate::primitives::{random_date_in_range, random_datetime};
use crate::rng::Rng;

/// The per-stream salt of the `purchases` generators.
pub const SALT: u64 = 0x7075_7263_6861_7365; // "purchase"

/// The number of products a purchase can refer to (`total_products`).
pub const TOTAL_PRODUCTS: i64 = 100;

/// `(purchase_count, id_shift)` of the user at 0-based `index`.
#[inline]
pub fn plan(index: u64) -> (u64, u64) {
    match index % 10 {
        6 => (0, 0),
        7 => (1, 1),
        8 => (2, 1),
        _ => (1, 0),
    }
}

/// How many purchases the first `users` users make in total.
pub fn total_for_users(users: u64) -> u64 {
    let full = users / 10 * 10;
    full + (full..users).map(|u| plan(u).0).sum::<u64>()
}

/// Appends the `data` object of purchase `i` (0 or 1) of the user at 0-based
/// `user_index`. Everything but `updated_at` depends only on `seed`,
/// `user_index` and `i`.
pub fn write_purchase(buf: &mut Vec<u8>, seed: u64, user_index: u64, i: u64, updated_at: &[u8]) {
    let (_, shift) = plan(user_index);
    let mut rng = Rng::for_record(seed, SALT, user_index.wrapping_mul(2).wrapping_add(i));
    let rng = &mut rng;
    let id = user_index + i + 1 - shift;

    let time_a = random_datetime(rng);
    let time_b = random_datetime(rng);
    let created_at = time_a.min(time_b);
    let product_id = rng.int_in(1, TOTAL_PRODUCTS);
    let added_to_cart_at = random_date_in_range(rng, created_at);
    let purchased_at = rng
        .percent(70)
        .then(|| random_date_in_range(rng, added_to_cart_at));
    let returned_at = match purchased_at {
        Some(p) if rng.percent(15) => Some(random_date_in_range(rng, p)),
        _ => None,
    };

    buf.extend_from_slice(b"{\"id\":");
    push_uint(buf, id);
    buf.extend_from_slice(b",\"product_id\":");
    push_uint(buf, product_id as u64);
    buf.extend_from_slice(b",\"user_id\":");
    push_uint(buf, user_index + 1);
    buf.extend_from_slice(b",\"created_at\":\"");
    write_iso_micros(buf, created_at);
    buf.extend_from_slice(b"\",\"updated_at\":\"");
    buf.extend_from_slice(updated_at);
    buf.extend_from_slice(b"\",\"added_to_cart_at\":\"");
    write_airbyte_time(buf, added_to_cart_at.secs);
    buf.push(b'"');
    if let Some(p) = purchased_at {
        buf.extend_from_slice(b",\"purchased_at\":\"");
        write_airbyte_time(buf, p.secs);
        buf.push(b'"');
    }
    if let Some(r) = returned_at {
        buf.extend_from_slice(b",\"returned_at\":\"");
        write_airbyte_time(buf, r.secs);
        buf.push(b'"');
    }
    buf.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn ten_users_make_ten_dense_purchases() {
        let mut ids = Vec::new();
        for u in 0..30 {
            let (n, shift) = plan(u);
            for i in 0..n {
                ids.push(u + i + 1 - shift);
            }
        }
        assert_eq!(ids, (1..=30).collect::<Vec<_>>());
        assert_eq!(total_for_users(50), 50);
        assert_eq!(total_for_users(7), 6);
        assert_eq!(total_for_users(8), 7);
        assert_eq!(total_for_users(9), 9);
        assert_eq!(total_for_users(120), 120);
    }

    #[test]
    fn purchase_shape() {
        let mut with_returned = 0;
        for u in 0..200 {
            let mut buf = Vec::new();
            write_purchase(&mut buf, 1, u, 0, b"2026-11-25T09:57:48+00:00");
            let v: Value = serde_json::from_slice(&buf).expect("valid JSON");
            let keys: Vec<&str> = v
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys[..6],
                [
                    "id",
                    "product_id",
                    "user_id",
                    "created_at",
                    "updated_at",
                    "added_to_cart_at"
                ]
            );
            assert_eq!(v["user_id"], u + 1);
            let created = v["created_at"].as_str().expect("created_at");
            assert!(!created.ends_with("+00:00") && created.len() >= 19);
            let added = v["added_to_cart_at"].as_str().expect("added");
            assert!(added[..19] >= created[..19]);
            if let Some(p) = v.get("purchased_at") {
                assert!(p.as_str().expect("str") >= added);
            }
            if v.get("returned_at").is_some() {
                assert!(v.get("purchased_at").is_some());
                with_returned += 1;
            }
        }
        assert!(with_returned > 0);
    }
}
