//! The Platform Server's response cache: rendered images kept in memory within a byte
//! budget, the least recently used evicted first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;

use crate::metrics::CacheMetrics;

/// A cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub content_type: Arc<str>,
    pub body: Bytes,
}

/// Bookkeeping bytes counted per entry on top of key and body.
const ENTRY_OVERHEAD: u64 = 128;

pub struct ResponseCache {
    budget: u64,
    lru: Mutex<Lru>,
    counters: CacheMetrics,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<Arc<str>, (u64, Cached)>,
    /// Last use tick → key; the first entry is the least recently used.
    order: BTreeMap<u64, Arc<str>>,
    tick: u64,
    bytes: u64,
}

/// Counters for the status page and systemd's status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
    pub budget: u64,
    pub hits: u64,
    pub misses: u64,
}

impl CacheStats {
    /// Hits as a percentage of lookups.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 * 100.0 / lookups as f64
        }
    }
}

fn cost(key: &str, value: &Cached) -> u64 {
    (key.len() + value.body.len() + value.content_type.len()) as u64 + ENTRY_OVERHEAD
}

impl ResponseCache {
    /// A cache holding at most `budget` bytes, counting into `counters`; 0 disables it.
    pub fn new(budget: u64, counters: CacheMetrics) -> Self {
        ResponseCache {
            budget,
            lru: Mutex::default(),
            counters,
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    pub fn get(&self, key: &str) -> Option<Cached> {
        if !self.enabled() {
            return None;
        }
        let found = self.lock().touch(key);
        let counter = if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.inc();
        found
    }

    /// Stores a response; one larger than an eighth of the budget is not worth the
    /// entries it would push out, and is not kept.
    pub fn insert(&self, key: &str, value: Cached) {
        let size = cost(key, &value);
        if !self.enabled() || size > self.budget / 8 {
            return;
        }
        let mut lru = self.lock();
        lru.remove(key);
        lru.tick += 1;
        let (tick, key): (u64, Arc<str>) = (lru.tick, key.into());
        lru.order.insert(tick, key.clone());
        lru.entries.insert(key, (tick, value));
        lru.bytes += size;
        while lru.bytes > self.budget {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            if let Some((_, evicted)) = lru.entries.remove(&oldest) {
                lru.bytes -= cost(&oldest, &evicted);
                self.counters.evictions.inc();
            }
        }
        self.counters.bytes.set(gauge(lru.bytes));
        self.counters.entries.set(gauge(lru.entries.len() as u64));
    }

    pub fn stats(&self) -> CacheStats {
        let lru = self.lock();
        CacheStats {
            entries: lru.entries.len(),
            bytes: lru.bytes,
            budget: self.budget,
            hits: self.counters.hits.get(),
            misses: self.counters.misses.get(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing the cache: keep serving.
        self.lru
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A gauge's value: the sizes involved are far below `i64::MAX`.
fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Lru {
    fn touch(&mut self, key: &str) -> Option<Cached> {
        self.tick += 1;
        let tick = self.tick;
        let (old_tick, value) = self.entries.get_mut(key)?;
        let previous = std::mem::replace(old_tick, tick);
        let value = value.clone();
        if let Some(k) = self.order.remove(&previous) {
            self.order.insert(tick, k);
        }
        Some(value)
    }

    fn remove(&mut self, key: &str) {
        if let Some((tick, value)) = self.entries.remove(key) {
            self.order.remove(&tick);
            self.bytes -= cost(key, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: usize) -> Cached {
        Cached {
            content_type: "image/jpeg".into(),
            body: Bytes::from(vec![0; n]),
        }
    }

    #[test]
    fn evicts_the_least_recently_used_within_budget() {
        let cache = ResponseCache::new(8 * 1000, CacheMetrics::default());
        for k in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            cache.insert(k, value(700));
            assert!(cache.get("a").is_some(), "a is kept fresh by use");
            assert!(cache.stats().bytes <= 8000);
        }
        assert!(cache.get("b").is_none(), "b was the oldest");
        assert!(cache.get("j").is_some());
        let s = cache.stats();
        assert_eq!(cache.counters.evictions.get(), 10 - s.entries as u64);
        assert_eq!(cache.counters.bytes.get(), s.bytes as i64);
        assert_eq!(cache.counters.entries.get(), s.entries as i64);
    }

    #[test]
    fn counts_hits_and_skips_huge_entries() {
        let cache = ResponseCache::new(8000, CacheMetrics::default());
        cache.insert("big", value(5000));
        assert!(cache.get("big").is_none());
        cache.insert("k", value(10));
        cache.insert("k", value(20));
        assert_eq!(cache.get("k").unwrap().body.len(), 20);
        let s = cache.stats();
        assert_eq!((s.entries, s.hits, s.misses), (1, 1, 1));
        assert_eq!(s.hit_rate(), 50.0);
    }

    #[test]
    fn zero_budget_disables() {
        let cache = ResponseCache::new(0, CacheMetrics::default());
        cache.insert("k", value(1));
        assert!(cache.get("k").is_none());
        assert_eq!(cache.stats().misses, 0);
    }
}
