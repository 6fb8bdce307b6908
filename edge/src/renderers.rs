//! Which renderer a call goes to when `RENDERER_URL` lists several (push mode, sync renders).
//!
//! Each job has a renderer of its own, the one its id hashes to, and after it the others in
//! the list's order, round from there: calls spread evenly over the renderers, and a renderer
//! that does not answer is skipped for the next. Once a renderer took a job, the job's
//! message names it (`taken_by`) and it alone is asked about the job: another would not know
//! it and start it a second time.

/// `renderers` in the order a call about `key` tries them: from the one `key` hashes to, round
/// the list.
pub fn order<'a>(renderers: &'a [String], key: &str) -> Vec<&'a str> {
    if renderers.is_empty() {
        return Vec::new();
    }
    let first = usize::try_from(fnv1a(key.as_bytes()) % renderers.len() as u64).unwrap_or(0);
    (0..renderers.len()).map(|i| renderers[(first + i) % renderers.len()].as_str()).collect()
}

/// 64-bit FNV-1a: stable across builds and platforms (the Worker's and the tests').
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<String> {
        ["http://a", "http://b", "http://c"].map(String::from).to_vec()
    }

    #[test]
    fn every_renderer_once_from_the_key_s_own() {
        let renderers = three();
        for key in ["01J0000000000000000000000A", "x", ""] {
            let order = order(&renderers, key);
            assert_eq!(order.len(), 3);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, ["http://a", "http://b", "http://c"], "each once");
            assert_eq!(order, super::order(&renderers, key), "the same key, the same order");
            // Round the list from the first.
            let at = renderers.iter().position(|r| r == order[0]).unwrap();
            assert_eq!(order[1], renderers[(at + 1) % 3]);
        }
        assert!(order(&[], "x").is_empty());
    }

    #[test]
    fn keys_spread_evenly() {
        let renderers = three();
        let mut first = [0usize; 3];
        for i in 0..3000 {
            let key = format!("01J{i:023}");
            let r = order(&renderers, &key)[0];
            first[renderers.iter().position(|x| x == r).unwrap()] += 1;
        }
        assert!(first.iter().all(|n| (800..1200).contains(n)), "{first:?}");
    }
}
