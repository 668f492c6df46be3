//! Helpers shared by unit tests.

/// `text` with one byte removed (`edit` 0), replaced by `byte` (1) or `byte` inserted (2) at
/// `at` (taken modulo the length): the damage the JSON readers' property tests apply to valid
/// messages before comparing a fast reader with serde.
pub fn damaged(text: &str, at: usize, edit: u8, byte: u8) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    let at = at % bytes.len();
    match edit {
        0 => {
            bytes.remove(at);
        }
        1 => bytes[at] = byte,
        _ => bytes.insert(at, byte),
    }
    bytes
}
