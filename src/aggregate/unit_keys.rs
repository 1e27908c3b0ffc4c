//! Interning of unit ids: each distinct id gets a dense `u32` index, so everything downstream
//! works on integers and arrays instead of strings and hash maps.
//!
//! Text ids live in one string arena (no allocation per id, no re-validation when read back); the table stores `(hash, index)`
//! so growing it never rehashes a string and a lookup compares hashes before bytes.

use super::columns::UnitKey;

/// The hasher of unit ids: fixed seeds, so the same id hashes the same in every shard, thread
/// and run (nothing's order depends on it, but reproducible runs are easier to debug).
static UNIT_HASHER: std::sync::LazyLock<ahash::RandomState> =
    std::sync::LazyLock::new(|| ahash::RandomState::with_seeds(0x5eed, 0xab, 0x7e57, 0x42));

/// The hash of a unit id.
#[inline]
pub(super) fn hash_unit(key: UnitKey<'_>) -> u64 {
    match key {
        UnitKey::Text(text) => UNIT_HASHER.hash_one(text.as_bytes()),
        UnitKey::Int(int) => UNIT_HASHER.hash_one(int),
    }
}

/// Whether unit ids are text or integers (one job's data must use one kind throughout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitIdKind {
    Text,
    Int,
}

/// Ids up to this many bytes are kept inside their table entry.
const INLINE: usize = 19;

/// A table entry: the id's hash and index, and the id itself when it is short (integer ids
/// always are), so that a lookup touches one cache line instead of two. 32 bytes, aligned to
/// them, so an entry never straddles two cache lines.
#[derive(Clone, Copy)]
#[repr(align(32))]
struct Entry {
    hash: u64,
    index: u32,
    /// The inline id's length; `u8::MAX` when the id lives only in the arena.
    len: u8,
    inline: [u8; INLINE],
}

impl Entry {
    fn new(hash: u64, index: u32, key: UnitKey<'_>) -> Self {
        let mut entry = Entry { hash, index, len: u8::MAX, inline: [0; INLINE] };
        let int_bytes;
        let bytes: &[u8] = match key {
            UnitKey::Text(text) => text.as_bytes(),
            UnitKey::Int(int) => {
                int_bytes = int.to_le_bytes();
                &int_bytes
            }
        };
        if bytes.len() <= INLINE {
            entry.len = bytes.len() as u8;
            entry.inline[..bytes.len()].copy_from_slice(bytes);
        }
        entry
    }
}

/// A short id's bytes, zero-padded to an entry's inline array.
#[inline]
fn padded(bytes: &[u8]) -> [u8; INLINE] {
    let mut inline = [0; INLINE];
    inline[..bytes.len()].copy_from_slice(bytes);
    inline
}

/// [`Entry::index`] of an empty slot.
const EMPTY: u32 = u32::MAX;

const EMPTY_ENTRY: Entry = Entry { hash: 0, index: EMPTY, len: 0, inline: [0; INLINE] };

const _: () = assert!(size_of::<Entry>() == 32);

/// The distinct unit ids seen in the exposure log.
pub struct UnitKeys {
    kind: Option<UnitIdKind>,
    /// Open addressing with linear probing: a power of two of slots, at most half full, an
    /// entry's home slot the low bits of its hash. A lookup touches the entry's own cache line
    /// only (no control bytes), so the caller can prefetch that line ahead of it
    /// ([`UnitKeys::prefetch`]), when interning exposures and when looking up events.
    slots: Vec<Entry>,
    arena: String,
    /// `offsets[i]..offsets[i + 1]` is text id `i` in `arena`.
    offsets: Vec<u64>,
    ints: Vec<i64>,
}

impl Default for UnitKeys {
    fn default() -> Self {
        Self { kind: None, slots: Vec::new(), arena: String::new(), offsets: vec![0], ints: Vec::new() }
    }
}

impl UnitKeys {
    pub fn kind(&self) -> Option<UnitIdKind> {
        self.kind
    }

    pub fn len(&self) -> usize {
        match self.kind {
            Some(UnitIdKind::Int) => self.ints.len(),
            _ => self.offsets.len() - 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the CPU to start loading the cache line where a lookup of `hash` begins, so that a
    /// loop can look up row `i` while row `i + k`'s line is on its way.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        if let Some(entry) = self.slots.get(hash as usize & self.slots.len().wrapping_sub(1)) {
            super::prefetch::prefetch(entry);
        }
    }

    #[inline]
    fn matches(&self, entry: &Entry, hash: u64, key: UnitKey<'_>) -> bool {
        if entry.hash != hash {
            return false;
        }
        match key {
            // Inline ids are zero-padded: comparing the whole fixed-size arrays is a few
            // instructions, where a slice comparison calls `memcmp`.
            UnitKey::Text(text) if entry.len != u8::MAX => {
                let bytes = text.as_bytes();
                bytes.len() == entry.len as usize && entry.inline == padded(bytes)
            }
            // Bytes, not `str`: slicing a `str` would check char boundaries on every probe.
            UnitKey::Text(text) => self.text_bytes(entry.index) == text.as_bytes(),
            UnitKey::Int(int) => entry.inline[..8] == int.to_le_bytes(),
        }
    }

    fn text_bytes(&self, index: u32) -> &[u8] {
        let i = index as usize;
        &self.arena.as_bytes()[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    fn text(&self, index: u32) -> &str {
        let i = index as usize;
        &self.arena[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The slot holding `key`, or the empty slot where it would go.
    #[inline]
    fn slot(&self, hash: u64, key: UnitKey<'_>) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let entry = &self.slots[at];
            if entry.index == EMPTY || self.matches(entry, hash, key) {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// The index of `key` (with its precomputed `hash`), if it was seen.
    #[inline]
    pub fn get(&self, hash: u64, key: UnitKey<'_>) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let index = self.slots[self.slot(hash, key)].index;
        (index != EMPTY).then_some(index)
    }

    /// The index of `key`, adding it when new.
    #[inline]
    pub fn intern(&mut self, hash: u64, key: UnitKey<'_>) -> u32 {
        if (self.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let at = self.slot(hash, key);
        if self.slots[at].index != EMPTY {
            return self.slots[at].index;
        }
        let index = self.len() as u32;
        self.kind.get_or_insert(match key {
            UnitKey::Text(_) => UnitIdKind::Text,
            UnitKey::Int(_) => UnitIdKind::Int,
        });
        match key {
            UnitKey::Text(text) => {
                self.arena.push_str(text);
                self.offsets.push(self.arena.len() as u64);
            }
            UnitKey::Int(int) => self.ints.push(int),
        }
        self.slots[at] = Entry::new(hash, index, key);
        index
    }

    /// Doubles the slots (16 at first) and places every entry again.
    fn grow(&mut self) {
        self.rehash((self.slots.len() * 2).max(16));
    }

    /// Shrinks the table of a set of ids that is complete to the fewest slots that keep it at
    /// most three quarters full. While ids are added the table is at most half full, so that
    /// inserting stays cheap; once they are all in, lookups are all that is left, a successful
    /// one probes 1.2 to 2.5 entries on average either way (linear probing), and half the
    /// table is half the memory and the TLB reach the event phase's random lookups need.
    pub(super) fn compact(&mut self) {
        let slots = (self.len() * 4).div_ceil(3).next_power_of_two().max(16);
        if slots < self.slots.len() {
            self.rehash(slots);
        }
    }

    /// Places every entry again in `slots` slots (a power of two, more than the entries).
    fn rehash(&mut self, slots: usize) {
        let mask = slots - 1;
        let old = std::mem::replace(&mut self.slots, vec![EMPTY_ENTRY; slots]);
        for entry in old.into_iter().filter(|entry| entry.index != EMPTY) {
            let mut at = entry.hash as usize & mask;
            while self.slots[at].index != EMPTY {
                at = (at + 1) & mask;
            }
            self.slots[at] = entry;
        }
    }

    /// The original id of `index`, for exports.
    pub fn key(&self, index: u32) -> UnitKey<'_> {
        match self.kind {
            Some(UnitIdKind::Int) => UnitKey::Int(self.ints[index as usize]),
            _ => UnitKey::Text(self.text(index)),
        }
    }

    /// Approximate heap bytes held, for the run log.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Entry>()
            + self.arena.capacity()
            + self.offsets.capacity() * 8
            + self.ints.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_dense_and_stable() {
        let mut keys = UnitKeys::default();
        let ids = ["u1", "u2", "u1", "u3", "u2"];
        let indices: Vec<u32> =
            ids.iter().map(|id| keys.intern(hash_unit(UnitKey::Text(id)), UnitKey::Text(id))).collect();
        assert_eq!(indices, vec![0, 1, 0, 2, 1]);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.kind(), Some(UnitIdKind::Text));
        assert_eq!(keys.key(2), UnitKey::Text("u3"));
        assert_eq!(keys.get(hash_unit(UnitKey::Text("u4")), UnitKey::Text("u4")), None);
    }

    #[test]
    fn long_and_short_ids_are_told_apart() {
        let mut keys = UnitKeys::default();
        let ids = [
            "a",
            "user-0000000000000000001",
            "user-0000000000000000002",
            "0123456789012345678",
            "01234567890123456789",
        ];
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(keys.intern(hash_unit(UnitKey::Text(id)), UnitKey::Text(id)), i as u32);
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(keys.get(hash_unit(UnitKey::Text(id)), UnitKey::Text(id)), Some(i as u32));
            assert_eq!(keys.key(i as u32), UnitKey::Text(id));
        }
        assert_eq!(
            keys.get(hash_unit(UnitKey::Text("user-0000000000000000003")), UnitKey::Text("user-0000000000000000003")),
            None
        );
    }

    #[test]
    fn keys_find_every_id_and_no_other_with_prefetches() {
        let mut keys = UnitKeys::default();
        let ids: Vec<String> =
            (0..5_000).map(|i| if i % 3 == 0 { format!("long-unit-id-{i:020}") } else { format!("u{i}") }).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(keys.intern(hash_unit(UnitKey::Text(id)), UnitKey::Text(id)), i as u32);
        }
        assert_eq!(keys.len(), ids.len());
        for (i, id) in ids.iter().enumerate() {
            let hash = hash_unit(UnitKey::Text(id));
            keys.prefetch(hash);
            assert_eq!(keys.get(hash, UnitKey::Text(id)), Some(i as u32));
        }
        for absent in ["u5000", "u-1", "", "long-unit-id-00000000000000000001"] {
            assert_eq!(keys.get(hash_unit(UnitKey::Text(absent)), UnitKey::Text(absent)), None, "{absent}");
        }
    }

    #[test]
    fn a_compacted_table_is_smaller_and_finds_every_id_and_no_other() {
        let mut keys = UnitKeys::default();
        let ids: Vec<String> = (0..3_000).map(|i| format!("u{i}")).collect();
        for id in &ids {
            keys.intern(hash_unit(UnitKey::Text(id)), UnitKey::Text(id));
        }
        // 3,000 ids at most half full: 8,192 slots; at most three quarters full: 4,096.
        assert_eq!(keys.slots.len(), 8_192);
        keys.compact();
        assert_eq!(keys.slots.len(), 4_096);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(keys.get(hash_unit(UnitKey::Text(id)), UnitKey::Text(id)), Some(i as u32));
        }
        assert_eq!(keys.get(hash_unit(UnitKey::Text("u3000")), UnitKey::Text("u3000")), None);
        keys.compact();
        assert_eq!(keys.slots.len(), 4_096, "compact once: nothing more to shrink");
        assert_eq!(UnitKeys::default().slots.len(), 0);
    }

    #[test]
    fn many_keys_survive_table_growth() {
        let mut keys = UnitKeys::default();
        for i in 0..10_000i64 {
            assert_eq!(keys.intern(hash_unit(UnitKey::Int(i * 7)), UnitKey::Int(i * 7)), i as u32);
        }
        assert_eq!(keys.kind(), Some(UnitIdKind::Int));
        assert_eq!(keys.get(hash_unit(UnitKey::Int(7 * 9_999)), UnitKey::Int(7 * 9_999)), Some(9_999));
        assert_eq!(keys.key(5), UnitKey::Int(35));
    }
}
