//! Real damage for the store's tests: garbage written over pages of a real SQLite file, as a bad
//! flash block or a torn write leaves it. Shared by the abuse suite and `store::salvage`'s unit
//! tests (which include this file by path).

use std::path::Path;

/// Overwrites `pages` leaf pages of the events table (page type 0x0D holding event JSON) near the
/// middle of `db` with garbage; returns how many it overwrote.
pub fn garbage_into_event_pages(db: &Path, pages: usize) -> usize {
    let mut bytes = std::fs::read(db).unwrap();
    let n = bytes.len() / 4096;
    let mut hit = 0;
    for p in (n / 2)..n {
        let page = &mut bytes[p * 4096..(p + 1) * 4096];
        if page[0] == 0x0D && page.windows(11).any(|w| w == b"\"camera_id\"") {
            for (i, b) in page.iter_mut().enumerate() {
                *b = (i * 7 + 13) as u8;
            }
            hit += 1;
            if hit == pages {
                break;
            }
        }
    }
    std::fs::write(db, bytes).unwrap();
    hit
}
