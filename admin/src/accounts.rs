//! What the commands do to the `API_KEYS` namespace. Its layout (edge/src/store.rs):
//!
//! - `key:<sha256 of the key>` → `{"account", "limits"}`: read on every request, so it
//!   carries the account's limits; the key itself is never stored.
//! - `account:<name>` → `{"account", "webhook_secret", "limits"}`: the webhook secret, read
//!   at each delivery, and the account's limits as set, copied into each of its keys.
//!
//! Keys and secrets are generated here from the system's randomness, and returned to be shown
//! once.

use tailpdf_edge::store::{account_key, api_key_key, Account, Limits, API_KEY_PREFIX};
use tailpdf_shared::signing::hash_api_key;

use crate::{kv::KeyStore, AdminError};

/// A new API key: `tpdf_` and 48 hex digits (192 random bits).
pub fn new_api_key() -> Result<String, AdminError> {
    Ok(format!("tpdf_{}", random_hex::<24>()?))
}

/// A new webhook secret: 64 hex digits (256 random bits), a plain secret as both signatures
/// expect (docs/DEPLOY.md).
pub fn new_webhook_secret() -> Result<String, AdminError> {
    random_hex::<32>()
}

fn random_hex<const N: usize>() -> Result<String, AdminError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| AdminError::Invalid(format!("no random numbers from the system: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Account names go into KV keys, idempotency keys and Durable Object names: a plain token.
pub fn check_account_name(name: &str) -> Result<(), AdminError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "account {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A key given by its value or by its hash (what `key list` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Value(String),
    Hash(String),
}

impl KeyRef {
    fn hash(&self) -> String {
        match self {
            Self::Value(key) => hash_api_key(key),
            Self::Hash(hash) => hash.to_ascii_lowercase(),
        }
    }
}

/// What `key create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedKey {
    pub key: String,
    /// The account's new webhook secret, when the account was made with the key.
    pub webhook_secret: Option<String>,
}

/// The commands, over a namespace.
pub struct Admin<S> {
    pub store: S,
}

impl<S: KeyStore> Admin<S> {
    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AdminError> {
        self.store
            .get(key)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| AdminError::Corrupt { key: key.into(), error: e.to_string() })
            })
            .transpose()
    }

    fn write(&self, key: &str, value: &Account) -> Result<(), AdminError> {
        let text = serde_json::to_string(value).map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.store.put(key, &text)
    }

    /// The account's record, if it has one.
    pub fn account(&self, name: &str) -> Result<Option<Account>, AdminError> {
        check_account_name(name)?;
        self.read(&account_key(name))
    }

    /// A new key for `account` (`key`, or a generated one). An account without a record gets
    /// one, with `webhook_secret` or a new one, returned to be shown once.
    pub fn create_key(
        &self,
        account: &str,
        key: Option<String>,
        webhook_secret: Option<String>,
    ) -> Result<CreatedKey, AdminError> {
        check_account_name(account)?;
        let key = match key {
            Some(key) if key.trim().is_empty() || key.trim() != key => {
                return Err(AdminError::Invalid(String::from(
                    "an API key cannot be empty or start or end with spaces",
                )));
            }
            Some(key) => key,
            None => new_api_key()?,
        };
        let hash = hash_api_key(&key);
        if let Some(existing) = self.read::<Account>(&api_key_key(&hash))? {
            return Err(AdminError::KeyExists(existing.account));
        }
        let (record, webhook_secret) = match self.account(account)? {
            Some(record) => (record, None),
            None => {
                let secret = match webhook_secret {
                    Some(s) if s.trim().is_empty() => {
                        return Err(AdminError::Invalid("a webhook secret cannot be empty".into()));
                    }
                    Some(s) => s,
                    None => new_webhook_secret()?,
                };
                let record = Account {
                    account: account.into(),
                    webhook_secret: Some(secret.clone()),
                    limits: Limits::default(),
                };
                self.write(&account_key(account), &record)?;
                (record, Some(secret))
            }
        };
        self.write(&api_key_key(&hash), &key_record(&record))?;
        Ok(CreatedKey { key, webhook_secret })
    }

    /// Deletes a key; returns its account. The Worker refuses it from its next read of KV.
    pub fn revoke_key(&self, key: &KeyRef) -> Result<String, AdminError> {
        let hash = key.hash();
        let record: Account =
            self.read(&api_key_key(&hash))?.ok_or_else(|| AdminError::NoSuchKey(hash.clone()))?;
        self.store.delete(&api_key_key(&hash))?;
        Ok(record.account)
    }

    /// A new key for the old key's account; the old one is revoked unless `keep_old` (to
    /// revoke once the customer has switched).
    pub fn rotate_key(&self, old: &KeyRef, keep_old: bool) -> Result<String, AdminError> {
        let hash = old.hash();
        let record: Account =
            self.read(&api_key_key(&hash))?.ok_or_else(|| AdminError::NoSuchKey(hash.clone()))?;
        let created = self.create_key(&record.account, None, None)?;
        if !keep_old {
            self.store.delete(&api_key_key(&hash))?;
        }
        Ok(created.key)
    }

    /// Sets the account's webhook secret (`secret`, or a generated one) and returns it. The
    /// Worker signs every delivery from now on with it, retries of older events included.
    pub fn set_webhook_secret(
        &self,
        account: &str,
        secret: Option<String>,
    ) -> Result<String, AdminError> {
        let mut record =
            self.account(account)?.ok_or_else(|| AdminError::NoSuchAccount(account.into()))?;
        let secret = match secret {
            Some(s) if s.trim().is_empty() => {
                return Err(AdminError::Invalid(String::from("a webhook secret cannot be empty")));
            }
            Some(s) => s,
            None => new_webhook_secret()?,
        };
        record.webhook_secret = Some(secret.clone());
        self.write(&account_key(account), &record)?;
        Ok(secret)
    }

    /// Changes the account's limits (`None`: leave as is; 0: no limit) in its record and in
    /// each of its keys; returns the limits now set and how many keys carry them.
    pub fn set_limits(&self, account: &str, change: Limits) -> Result<(Limits, usize), AdminError> {
        let mut record =
            self.account(account)?.ok_or_else(|| AdminError::NoSuchAccount(account.into()))?;
        record.limits = change.or(record.limits);
        self.write(&account_key(account), &record)?;
        let mut keys = 0;
        for (entry, mut key) in self.keys()? {
            if key.account == account {
                key.limits = record.limits;
                self.write(&entry, &key)?;
                keys += 1;
            }
        }
        Ok((record.limits, keys))
    }

    /// Every key's hash and record, or `account`'s only.
    pub fn list_keys(&self, account: Option<&str>) -> Result<Vec<(String, Account)>, AdminError> {
        let keys = self.keys()?.into_iter().filter(|(_, k)| account.is_none_or(|a| k.account == a));
        Ok(keys
            .map(|(entry, k)| (entry.trim_start_matches(API_KEY_PREFIX).to_owned(), k))
            .collect())
    }

    fn keys(&self) -> Result<Vec<(String, Account)>, AdminError> {
        let mut keys = Vec::new();
        for entry in self.store.list(API_KEY_PREFIX)? {
            // Revoked between the listing and the read: gone, not an error.
            if let Some(record) = self.read::<Account>(&entry)? {
                keys.push((entry, record));
            }
        }
        Ok(keys)
    }
}

/// What a key's entry holds: its account and the account's limits, never the secret.
fn key_record(account: &Account) -> Account {
    Account { account: account.account.clone(), webhook_secret: None, limits: account.limits }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryStore;

    fn admin() -> Admin<MemoryStore> {
        Admin { store: MemoryStore::default() }
    }

    fn entry(admin: &Admin<MemoryStore>, key: &str) -> Option<serde_json::Value> {
        admin.store.get(key).unwrap().map(|v| serde_json::from_str(&v).unwrap())
    }

    #[test]
    fn a_new_key_is_stored_hashed_and_its_account_made_with_a_secret_once() {
        let admin = admin();
        let first = admin.create_key("acme", None, None).unwrap();
        assert!(first.key.starts_with("tpdf_") && first.key.len() == 53, "{}", first.key);
        let secret = first.webhook_secret.clone().unwrap();
        assert_eq!(secret.len(), 64);
        let stored = entry(&admin, &format!("key:{}", hash_api_key(&first.key))).unwrap();
        assert_eq!(stored, serde_json::json!({"account": "acme"}), "no secret in a key's entry");
        let all = format!("{:?}", admin.store.0.lock().unwrap());
        assert!(!all.contains(&first.key), "the key itself is never stored");
        assert_eq!(entry(&admin, "account:acme").unwrap()["webhook_secret"], secret.as_str());

        let second = admin.create_key("acme", None, None).unwrap();
        assert_ne!(second.key, first.key);
        assert_eq!(second.webhook_secret, None, "the account exists: its secret is kept");
        assert_eq!(entry(&admin, "account:acme").unwrap()["webhook_secret"], secret.as_str());
        assert_eq!(admin.list_keys(Some("acme")).unwrap().len(), 2);
        assert!(matches!(
            admin.create_key("other", Some(first.key), None),
            Err(AdminError::KeyExists(a)) if a == "acme"
        ));
    }

    #[test]
    fn bad_names_and_keys_are_refused() {
        let admin = admin();
        for name in ["", "a:b", "a b", &"x".repeat(65)] {
            assert!(
                matches!(admin.create_key(name, None, None), Err(AdminError::Invalid(_))),
                "{name}"
            );
        }
        for key in ["", " padded "] {
            let e = admin.create_key("acme", Some(key.into()), None);
            assert!(matches!(e, Err(AdminError::Invalid(_))), "{key:?}");
        }
        assert!(admin.store.0.lock().unwrap().is_empty());
    }

    #[test]
    fn revoke_and_rotate() {
        let admin = admin();
        let old = admin.create_key("acme", Some("old-key".into()), None).unwrap().key;
        let new = admin.rotate_key(&KeyRef::Value(old.clone()), true).unwrap();
        assert_eq!(admin.list_keys(Some("acme")).unwrap().len(), 2, "the old one kept");
        assert_eq!(admin.revoke_key(&KeyRef::Value(old.clone())).unwrap(), "acme");
        assert!(entry(&admin, &format!("key:{}", hash_api_key(&old))).is_none());
        assert!(matches!(admin.revoke_key(&KeyRef::Value(old)), Err(AdminError::NoSuchKey(_))));
        let newer = admin.rotate_key(&KeyRef::Hash(hash_api_key(&new).to_uppercase()), false);
        let newer = newer.unwrap();
        let keys = admin.list_keys(None).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, hash_api_key(&newer));
    }

    #[test]
    fn limits_go_to_the_account_and_every_one_of_its_keys() {
        let admin = admin();
        let a1 = admin.create_key("acme", None, None).unwrap().key;
        let a2 = admin.create_key("acme", None, None).unwrap().key;
        let b = admin.create_key("other", None, None).unwrap().key;
        let change = Limits { requests_per_minute: Some(120), jobs_in_flight: None };
        let (now, keys) = admin.set_limits("acme", change).unwrap();
        assert_eq!((now, keys), (change, 2));
        let change = Limits { requests_per_minute: None, jobs_in_flight: Some(0) };
        let (now, _) = admin.set_limits("acme", change).unwrap();
        let both = Limits { requests_per_minute: Some(120), jobs_in_flight: Some(0) };
        assert_eq!(now, both, "one limit changed, the other kept");
        for key in [&a1, &a2] {
            let stored = entry(&admin, &format!("key:{}", hash_api_key(key))).unwrap();
            let limits: Limits = serde_json::from_value(stored["limits"].clone()).unwrap();
            assert_eq!(limits, both);
        }
        assert!(entry(&admin, &format!("key:{}", hash_api_key(&b)))
            .unwrap()
            .get("limits")
            .is_none());
        // A key made later carries the account's limits too.
        let a3 = admin.create_key("acme", None, None).unwrap().key;
        let stored = entry(&admin, &format!("key:{}", hash_api_key(&a3))).unwrap();
        assert_eq!(stored["limits"]["requests_per_minute"], 120);
        assert!(matches!(admin.set_limits("nobody", change), Err(AdminError::NoSuchAccount(_))));
    }

    #[test]
    fn a_webhook_secret_is_replaced_and_the_limits_kept() {
        let admin = admin();
        let first = admin.create_key("acme", None, None).unwrap().webhook_secret.unwrap();
        let limits = Limits { requests_per_minute: Some(5), jobs_in_flight: Some(1) };
        admin.set_limits("acme", limits).unwrap();
        let second = admin.set_webhook_secret("acme", None).unwrap();
        assert_ne!(first, second);
        let record = admin.account("acme").unwrap().unwrap();
        assert_eq!(
            (record.webhook_secret.as_deref(), record.limits),
            (Some(second.as_str()), limits)
        );
        assert_eq!(admin.set_webhook_secret("acme", Some("given".into())).unwrap(), "given");
        assert!(admin.set_webhook_secret("nobody", None).is_err());
        let given = admin.create_key("b", None, Some("dev-secret".into())).unwrap();
        assert_eq!(given.webhook_secret.as_deref(), Some("dev-secret"));
        let record = admin.account("b").unwrap().unwrap();
        assert_eq!(record.webhook_secret.as_deref(), Some("dev-secret"));
    }

    #[test]
    fn a_record_the_worker_could_not_read_is_reported_not_overwritten() {
        let admin = admin();
        admin.store.put("account:acme", "not json").unwrap();
        let e = admin.set_webhook_secret("acme", None).unwrap_err();
        assert!(matches!(e, AdminError::Corrupt { .. }), "{e}");
        assert_eq!(admin.store.get("account:acme").unwrap().as_deref(), Some("not json"));
    }
}
