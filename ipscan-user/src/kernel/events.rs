//! The records the program writes to the EVENTS ring buffer, as user space reads them.

use ipscan_common::Event;

/// Reads one raw ring-buffer record as an [`Event`].
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: Event is plain old data of this size; read_unaligned copes with any alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}
